#!/usr/bin/env bash
# Regenerate the Python code for proto/externalscaler.proto (messages, gRPC stubs and their .pyi
# type stubs). Usage: scripts/gen_proto.sh [OUT_DIR]   (default: the repository root, so the
# files land in proto/). tests/test_proto.py runs this into a temporary directory and fails when
# the committed files differ.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
py=${PYTHON:-.venv/bin/python}
bin=$(dirname "$py")
mkdir -p "$out/proto"
# -I . makes the generated imports package-qualified ("from proto import externalscaler_pb2").
PATH="$bin:$PATH" "$py" -m grpc_tools.protoc -I . \
  --python_out="$out" --grpc_python_out="$out" \
  --mypy_out="$out" --mypy_grpc_out="$out" \
  proto/externalscaler.proto
