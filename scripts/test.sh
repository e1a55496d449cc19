#!/usr/bin/env bash
# The one test command: set-up if needed, then lint, format check, strict typing and the suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -k policy).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. .venv/bin/activate
echo "== ruff check" && ruff check .
echo "== ruff format --check" && ruff format --check .
echo "== mypy (strict)" && mypy
echo "== pytest" && exec pytest "$@"
