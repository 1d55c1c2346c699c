# The model-server runtime image: `modelpilot serve` and `modelpilot fetch` (the pods' init
# container) with the [server] extra. Not built in this repository's CI: the development machines
# have no Docker engine (docs/runtime.md). Build with:
#   docker build -f docker/runtime.Dockerfile -t ghcr.io/modelpilot/runtime:0.1.0 .
#
# Made for the pod the operator generates: runAsNonRoot (uid 1000), readOnlyRootFilesystem, with
# writable emptyDirs only at /tmp and /mnt/models. Nothing here writes elsewhere at run time.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
# A wheel of the project, installed with its [server] extra into a self-contained prefix.
RUN pip wheel --no-cache-dir --no-deps -w /wheels . \
 && pip install --no-cache-dir --prefix=/install "$(ls /wheels/modelpilot-*.whl)[server]" \
 # Bytecode compiled now: a read-only root filesystem cannot take __pycache__ at run time.
 && python -m compileall -q /install

FROM python:3.11-slim-bookworm
# libgomp: OpenMP runtime used by scikit-learn and XGBoost wheels.
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 1000 modelpilot \
 && useradd --uid 1000 --gid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin modelpilot
COPY --from=build /install /usr/local
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    MODELPILOT_MODEL_DIR=/mnt/models \
    MODELPILOT_PORT=8080
USER 1000:1000
EXPOSE 8080
# The operator sets command ["modelpilot"] and args ["serve", ...] or ["fetch", URI, DIR].
ENTRYPOINT ["modelpilot"]
CMD ["serve"]
