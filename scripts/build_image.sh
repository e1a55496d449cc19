#!/usr/bin/env bash
# Build an image from the Dockerfile with podman, offline, then print its size and the Python
# packages it holds:
#   scripts/build_image.sh                    # the scaler, tagged depthscale:<version>
#   scripts/build_image.sh --target worker    # the worker, tagged depthscale-worker:<version>
#   scripts/build_image.sh --tag NAME:TAG     # another tag
# No container registry is reached: the base is Debian's own python3 in a root filesystem made by
# mmdebstrap from Debian's packages and imported into podman; the Python packages are the lock
# files' (requirements/), downloaded by pip on this host into a wheelhouse the build installs from
# with --no-index. Both are cached, keyed on their inputs (the base on its mmdebstrap arguments,
# the wheelhouse on the lock files), and podman caches the layers, so a second run only rebuilds
# what changed. The cache lives in $DEPTHSCALE_IMAGE_CACHE (default ~/.cache/depthscale/image);
# to take Debian's current packages, delete it and the localhost/depthscale-base image.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

target=scaler
tag=
while [ $# -gt 0 ]; do
  case $1 in
    --target) target=${2:?--target needs scaler or worker}; shift 2 ;;
    --tag) tag=${2:?--tag needs NAME:TAG}; shift 2 ;;
    *) echo "build_image: unknown argument $1 (--target scaler|worker, --tag NAME:TAG)" >&2; exit 2 ;;
  esac
done
case $target in
  scaler) name=depthscale ;;
  worker) name=depthscale-worker ;;
  *) echo "build_image: --target must be scaler or worker, got $target" >&2; exit 2 ;;
esac

# Set-up if needed (a fresh clone): the tools, and .venv's pip for the wheelhouse.
if [ ! -x .venv/bin/python ] || ! command -v podman >/dev/null || ! command -v mmdebstrap >/dev/null; then
  scripts/bootstrap.sh
fi
for tool in podman mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build_image: $tool not found (scripts/bootstrap.sh installs it as root on Debian)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
tag=${tag:-$name:$version}
cache=${DEPTHSCALE_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/depthscale/image}
mkdir -p "$cache"
# runc and the ulimits this host needs, without editing the system's containers.conf.
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}

# The base: Debian bookworm's python3 (3.11, as the public python:3.11-slim-bookworm base) in a
# minimal root filesystem, without documentation, manual pages or translations.
base_args=(
  --variant=minbase --include=python3,python3-venv,ca-certificates
  --dpkgopt=path-exclude=/usr/share/doc/* --dpkgopt=path-include=/usr/share/doc/*/copyright
  --dpkgopt=path-exclude=/usr/share/man/* --dpkgopt=path-exclude=/usr/share/info/*
  --dpkgopt=path-exclude=/usr/share/locale/*
  bookworm
)
base_key=$(printf '%s\n' "${base_args[@]}" | sha256sum | cut -c1-12)
base=localhost/depthscale-base:bookworm-$base_key
if ! podman image exists "$base"; then
  rootfs=$cache/base-$base_key.tar
  if [ ! -f "$rootfs" ]; then
    echo "build_image: making the base root filesystem (mmdebstrap)" >&2
    partial_rootfs=$rootfs.partial.$$
    trap 'rm -f "$partial_rootfs"' EXIT
    mmdebstrap --quiet --format=tar "${base_args[@]}" "$partial_rootfs"
    mv "$partial_rootfs" "$rootfs"
  fi
  podman import --quiet "$rootfs" "$base" >/dev/null
fi
base_s=$((SECONDS - started))

# The wheelhouse: every file the lock files name for CPython 3.11 on this architecture, markers
# ignored so the build's interpreter decides (python_full_version < 3.11.3 needs async-timeout).
arch=$(uname -m)
platforms=()  # glibc 2.17 (manylinux2014) up to bookworm's 2.36
for glibc in $(seq 17 36); do platforms+=(--platform "manylinux_2_${glibc}_$arch"); done
wheel_key=$( { echo "cp311 $arch"; cat requirements/*.txt; } | sha256sum | cut -c1-12)
wheels=$cache/wheels-$wheel_key
if [ ! -d "$wheels" ]; then
  echo "build_image: downloading the locked wheels" >&2
  partial=$(mktemp -d "$cache/wheels.partial.XXXXXX")
  trap 'rm -rf "$partial"' EXIT
  for lock in requirements/*.txt; do
    sed -E 's/ ; [^\\]*\\$/ \\/' "$lock" > "$partial/requirements.txt"
    .venv/bin/python -m pip download --quiet --require-hashes --no-deps --only-binary=:all: \
      --python-version 3.11 --implementation cp --abi cp311 "${platforms[@]}" \
      --dest "$partial" -r "$partial/requirements.txt"
  done
  rm "$partial/requirements.txt"
  mv -T "$partial" "$wheels" 2>/dev/null || rm -r "$partial"  # another build got there first
fi

wheels_s=$((SECONDS - started - base_s))
echo "build_image: building $tag (target $target)" >&2
podman build --quiet --format docker --network=host --target "$target" --tag "$tag" \
  --build-arg BASE="$base" --build-arg PIP_NO_INDEX=1 \
  --build-context wheelhouse="$wheels" . >/dev/null

size=$(podman image inspect --format '{{.Size}}' "$tag")
total_s=$((SECONDS - started))
echo "$tag: $((size / 1000000)) MB, built in $total_s s (base $base_s s, wheels $wheels_s s, podman build $((total_s - base_s - wheels_s)) s)"
podman run --rm --network=none --no-healthcheck --entrypoint python "$tag" -c '
from importlib.metadata import distributions
for name, version in sorted((d.metadata["Name"], d.version) for d in distributions()):
    print(f"  {name}=={version}")'
