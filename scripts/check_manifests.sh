#!/usr/bin/env bash
# The manifest checks alone (docs/deploy.md, "The checks"): set-up if needed, then the tests that
# validate manifests/, the Dockerfile and the gateway/alerts with the real tools.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. .venv/bin/activate
exec pytest tests/manifests tests/scaler/test_healthcheck.py "$@"
