# syntax=docker/dockerfile:1
# The depthscale scaler: `depthscale serve` on slim Python, non-root, fit for a read-only root
# filesystem (bytecode compiled at build time, nothing written at run time).
#   docker build -t depthscale:0.1.0 .
# tests/manifests/test_dockerfile.py lints this file with hadolint and checks it against the
# scaler's imports and the Kubernetes Deployment.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/depthscale
COPY pyproject.toml README.md /src/
COPY policies /src/policies
COPY proto /src/proto
COPY scaler /src/scaler
# Only what `depthscale serve` imports: the simulator's numpy, pyarrow and matplotlib stay out.
RUN /opt/depthscale/bin/pip install --no-deps /src \
 && /opt/depthscale/bin/pip install \
        "click>=8.1" \
        "grpcio>=1.85.1" \
        "grpcio-health-checking>=1.85.1" \
        "prometheus-client>=0.20" \
        "protobuf>=7.35.1" \
        "redis>=5.0"

FROM ${PYTHON_IMAGE}
COPY --from=build /opt/depthscale /opt/depthscale
ENV PATH=/opt/depthscale/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Matches the Deployment's runAsUser; no home, no shell profile needed.
USER 10001:10001
EXPOSE 9090 9100
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "scaler.healthcheck", "--port", "9090"]
ENTRYPOINT ["depthscale"]
CMD ["serve", "--port", "9090", "--metrics-port", "9100"]
