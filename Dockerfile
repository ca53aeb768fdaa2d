# syntax=docker/dockerfile:1
# Runtime image of the emotion service: no torch, no compilers, models prepared at build time.

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY service ./service
COPY model_store ./model_store
# The same two steps as `make serve`: install the runtime, then fetch and verify the detector.
RUN pip install . \
 && python -m service.prepare --store /src/model_store

FROM python:3.11.7-slim-bookworm AS runtime
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /src/model_store /app/model_store
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EMOTION_HOST=0.0.0.0 \
    EMOTION_PORT=8000 \
    EMOTION_MODEL_STORE=/app/model_store
WORKDIR /app
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)"]
# On SIGTERM the service drains (service/shutdown.py): unready, serving on for EMOTION_DRAIN_S, then it
# finishes what is in flight and exits.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "service"]
