#!/usr/bin/env bash
# Regenerate the images' hashed lock files from pyproject.toml; run it after changing an extra
# the images install or the build backend, and commit requirements/ with the change.
#   requirements/serve.txt   the `serve` extra: the scaler image (`depthscale serve`)
#   requirements/worker.txt  the `worker` extra: the worker image (`depthscale worker`)
#   requirements/build.txt   pip and the build backend (pyproject's [build-system] requires):
#                            the build stage's tools, never in a final image
# Universal (one file for every platform and Python 3.11 patch release), every distribution's
# sha256, so `pip install --require-hashes` installs exactly these files or nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
uv=${UV:-.venv/bin/uv}
py=${PYTHON:-.venv/bin/python}

compile() {
  "$uv" pip compile --quiet --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command scripts/lock_requirements.sh "$@"
}

mkdir -p requirements
# httpx2 (lightkube's HTTP client) needs httpx2-jsfetch only under Pyodide (sys_platform ==
# 'emscripten', Python >= 3.12): no image runs there, and it has no wheel for 3.11 to download.
compile pyproject.toml --extra serve --no-emit-package httpx2-jsfetch \
  --output-file requirements/serve.txt
compile pyproject.toml --extra worker --output-file requirements/worker.txt
{
  echo pip
  "$py" -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"]))'
} | compile - --output-file requirements/build.txt
