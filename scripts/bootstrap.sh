#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: the Debian tools the real checks use, a virtualenv in
# .venv with depthscale installed (editable) and its dev extras. Safe to run again: it only does
# what is missing. Used by quickstart.sh and test.sh; nobody needs to run it by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v nginx >/dev/null 2>&1 || need_apt+=(nginx-light)
# RabbitMQ tests start a private node (management plugin, TLS listener) from the Debian package.
command -v rabbitmq-server >/dev/null 2>&1 || need_apt+=(rabbitmq-server)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
# The image test: podman builds and runs the image (runc: crun refuses hybrid cgroups); mmdebstrap
# makes its local Debian base, since no base image is pulled during the tests.
command -v podman >/dev/null 2>&1 || need_apt+=(podman)
command -v runc >/dev/null 2>&1 || need_apt+=(runc)
command -v mmdebstrap >/dev/null 2>&1 || need_apt+=(mmdebstrap)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing ${need_apt[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # policy-rc.d keeps Debian from starting the packaged daemons; the tests start their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  else
    echo "bootstrap: missing ${need_apt[*]} (not root or no apt-get); tests needing them will skip" >&2
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.depthscale-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "bootstrap: installing python packages into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  # setuptools warns that a folder named like a package may shadow it: these folders are it.
  PYTHONWARNINGS="ignore:Editable installation" .venv/bin/python -m pip install -q -e ".[dev]"
  echo "$want" > "$stamp"
fi

# checkov (tests/manifests/test_checkov.py) requires packaging < 24 and pins boto3 and networkx,
# while pytest requires packaging >= 24: it cannot share .venv, so it gets a virtualenv of its own.
CHECKOV_VERSION=3.3.30
if [ ! -x .venv-checkov/bin/checkov ] || [ "$(cat .venv-checkov/.version 2>/dev/null)" != "$CHECKOV_VERSION" ]; then
  echo "bootstrap: installing checkov $CHECKOV_VERSION into .venv-checkov" >&2
  "$PY" -m venv .venv-checkov
  .venv-checkov/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv-checkov/bin/python -m pip install -q "checkov==$CHECKOV_VERSION"
  echo "$CHECKOV_VERSION" > .venv-checkov/.version
fi
