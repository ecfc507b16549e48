# syntax=docker/dockerfile:1
# venue-gateway: a virtualenv built in one stage, run slim and unprivileged in the next.
#   docker build -t venue-gateway .
#   docker run -p 8000:8000 -e GATEWAY_ENV=dev -e GATEWAY_AUTH0__DOMAIN=... venue-gateway
# The same image serves the emulator: `docker run venue-gateway emulator --host 0.0.0.0`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml README.md ./
COPY settings ./settings
COPY emulator ./emulator
COPY app ./app
RUN pip install --no-cache-dir .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="venue-gateway" \
      org.opencontainers.image.description="Auth0 password login in front of the venue API"
# a fixed uid/gid, so volumes and Kubernetes' runAsUser can name it
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid gateway --no-create-home \
       --home-dir /var/lib/venue-gateway --shell /usr/sbin/nologin gateway \
    && install -d -o gateway -g gateway -m 0750 /var/lib/venue-gateway
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    GATEWAY_HOST=0.0.0.0 \
    GATEWAY_PORT=8000
# the default SQLite file (local only) and nothing else is written here
WORKDIR /var/lib/venue-gateway
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('GATEWAY_PORT', '8000'), timeout=2)"]
STOPSIGNAL SIGTERM
# `gateway serve`: uvicorn with the app factory (app.main:create_app), JSON logs, graceful stop
ENTRYPOINT ["gateway"]
CMD ["serve"]
