#!/usr/bin/env bash
# The manifest checks alone (docs/deploy.md, "The checks"): set-up if needed, then the tests that
# validate manifests/, the Dockerfile and the gateway/alerts with the real tools: kubernetes-validate
# (strict, Kubernetes 1.33-1.37), the vendored CRD schemas, kubectl kustomize, checkov (in its own
# .venv-checkov), promtool, nginx and hadolint.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
. .venv/bin/activate
exec pytest tests/manifests tests/scaler/test_healthcheck.py "$@"
