# syntax=docker/dockerfile:1
# depthscale's two images, from one file:
#   scaler (the last stage, the default): `depthscale serve`, the KEDA external scaler
#     docker build -t depthscale:0.1.0 .
#   worker: `depthscale worker`, the Celery worker beside each vLLM replica
#     docker build --target worker -t depthscale-worker:0.1.0 .
# Each is a virtualenv holding the project's wheel and its extra's hashed lock file
# (requirements/<extra>.txt, written by scripts/lock_requirements.sh, installed with
# --require-hashes), on slim Python, as a numeric non-root user, with no pip, build backend or
# compiler of its own; bytecode is compiled at build time, so a read-only root filesystem is enough.
# Offline builds (scripts/build_image.sh) pass a local base (--build-arg BASE=...), a directory of
# the locked wheels (--build-context wheelhouse=DIR) and --build-arg PIP_NO_INDEX=1.
# tests/manifests/test_dockerfile.py lints this file and checks it against the lock files and the
# Deployment; tests/image/ builds both images and runs them.
ARG BASE=python:3.11.15-slim-bookworm@sha256:d29f48a31a8b408ed19272ca1e7b10ebae13b240a27e862d3d4217c528e2e0c3

# Wheels pip may install from besides the index: none, unless the build names a directory.
FROM scratch AS wheelhouse

# pip and the build backend, pinned and hashed (requirements/build.txt), in a venv of their own.
FROM ${BASE} AS tools
ARG PIP_NO_INDEX=0
ENV PIP_NO_INDEX=${PIP_NO_INDEX} \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_FIND_LINKS=/wheelhouse \
    PIP_ONLY_BINARY=:all:
COPY requirements/build.txt /src/requirements/
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -m venv /opt/tools \
 && /opt/tools/bin/pip install --require-hashes --no-deps -r /src/requirements/build.txt

# The project's wheel: the scaler's packages.
FROM tools AS wheel
COPY pyproject.toml README.md /src/
COPY policies /src/policies
COPY proto /src/proto
COPY scaler /src/scaler
RUN /opt/tools/bin/pip wheel --no-deps --no-build-isolation --no-binary depthscale \
        --wheel-dir /dist /src

# The same wheel with the worker's package.
FROM wheel AS worker-wheel
COPY worker /src/worker
RUN rm -r /dist \
 && /opt/tools/bin/pip wheel --no-deps --no-build-isolation --no-binary depthscale \
        --wheel-dir /dist /src

# A virtualenv without pip: the locked dependencies, then the project's wheel (no dependencies:
# the lock file already holds them), both installed by the tools' pip.
FROM tools AS scaler-venv
COPY requirements/serve.txt /src/requirements/
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -m venv --without-pip /opt/depthscale \
 && /opt/tools/bin/pip --python /opt/depthscale/bin/python install \
        --require-hashes --no-deps -r /src/requirements/serve.txt
COPY --from=wheel /dist /dist
RUN /opt/tools/bin/pip --python /opt/depthscale/bin/python install --no-deps /dist/*.whl

FROM tools AS worker-venv
COPY requirements/worker.txt /src/requirements/
RUN --mount=type=bind,from=wheelhouse,target=/wheelhouse \
    python3 -m venv --without-pip /opt/depthscale \
 && /opt/tools/bin/pip --python /opt/depthscale/bin/python install \
        --require-hashes --no-deps -r /src/requirements/worker.txt
COPY --from=worker-wheel /dist /dist
RUN /opt/tools/bin/pip --python /opt/depthscale/bin/python install --no-deps /dist/*.whl

# The worker: `depthscale worker --model NAME ...` (the pod's args), beside vLLM.
FROM ${BASE} AS worker
COPY --from=worker-venv /opt/depthscale /opt/depthscale
ENV PATH=/opt/depthscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
ENTRYPOINT ["depthscale", "worker"]

# The scaler. Matches the Deployment's runAsUser; no home, no shell profile needed.
FROM ${BASE} AS scaler
COPY --from=scaler-venv /opt/depthscale /opt/depthscale
ENV PATH=/opt/depthscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
EXPOSE 9090 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "scaler.healthcheck", "--port", "9090"]
ENTRYPOINT ["depthscale"]
CMD ["serve", "--port", "9090", "--metrics-port", "9100"]
