# syntax=docker/dockerfile:1
# Images of the online service (the default target) and of the batch job (--target batch):
# no torch, no compilers, models prepared at build time.
#
# BASE_IMAGE: any Debian bookworm with Python 3.11 and its venv module (the CI builds on a local
# debootstrap image, since it cannot pull). PIP_CERT: a CA bundle for pip behind a TLS-inspecting
# proxy, mounted into the build (docs/operations.md).
ARG BASE_IMAGE=python:3.11.7-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG PIP_CERT
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY service ./service
COPY model_store ./model_store
# The same two steps as `make serve`: install the runtime (with PostgreSQL and object-store support,
# for replicas that share jobs), then fetch and verify the detector.
RUN pip install "./[postgres,objectstore]" \
 && python -m service.inference.prepare --store /src/model_store

# The service's environment as it runs: nothing left to install with.
FROM build AS build-runtime
RUN pip uninstall --yes pip setuptools

# The batch job's environment: the same install plus Ray Data and pyarrow (emotion-batch).
FROM build AS build-batch
ARG PIP_CERT
COPY batch ./batch
RUN pip install "./[batch]"

# What both images share: an unprivileged user and the prepared model store.
FROM ${BASE_IMAGE} AS base
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /src/model_store /app/model_store
# HOME: the user has no home directory; libraries that keep files there (onnxruntime's telemetry id,
# Ray's session token) get /tmp, the one writable place (a tmpfs or an emptyDir on a read-only root).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    EMOTION_MODEL_STORE=/app/model_store
WORKDIR /app

# docker build --target batch -t emotion-service:batch .   (k8s/batch runs it on KubeRay)
FROM base AS batch
COPY --from=build-batch /opt/venv /opt/venv
USER 10001
CMD ["emotion-batch", "score", "--help"]

# The online service, and the default target.
FROM base AS runtime
COPY --from=build-runtime /opt/venv /opt/venv
# The root filesystem is read-only: the default job store and uploads live under /tmp (a tmpfs or an
# emptyDir); replicas set EMOTION_DATABASE_URL and EMOTION_MEDIA_STORE to shared ones.
ENV EMOTION_HOST=0.0.0.0 \
    EMOTION_PORT=8000 \
    EMOTION_DATABASE_URL=sqlite:////tmp/emotion/jobs.db \
    EMOTION_MEDIA_STORE=/tmp/emotion/media
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# On SIGTERM the service drains (service/shutdown.py): unready, serving on for EMOTION_DRAIN_S, then it
# finishes what is in flight and exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
