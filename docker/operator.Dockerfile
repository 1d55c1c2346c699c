# syntax=docker/dockerfile:1
# The operator image: `modelpilot operator`, deployed by charts/modelpilot. Not built in this
# repository's CI: the development machines have no Docker engine (docs/helm.md). Build with:
#   docker build -f docker/operator.Dockerfile -t ghcr.io/modelpilot/operator:0.1.0 .
#
# Made for the chart's pod: runAsNonRoot (uid 10001), readOnlyRootFilesystem, all capabilities
# dropped, a writable emptyDir only at /tmp. Nothing here writes elsewhere at run time.

# ---- build: the project's wheel and the wheels of its dependencies (no [server] extra: the
# model-server runtime is a separate image, docker/runtime.Dockerfile).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

# ---- final: Python and the installed wheels only; no compiler, no pip, no source tree.
FROM python:3.11-slim-bookworm
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels modelpilot \
 # Bytecode compiled now: a read-only root filesystem cannot take __pycache__ at run time.
 && python -m compileall -q "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 # No installer or build tooling left in the image.
 && pip uninstall -y pip setuptools wheel \
 && groupadd --gid 10001 modelpilot \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin modelpilot
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /tmp
# 8080: Kopf's liveness endpoint (--liveness); 8090: /metrics (MODELPILOT_METRICS_PORT).
EXPOSE 8080 8090
ENTRYPOINT ["modelpilot", "operator"]
