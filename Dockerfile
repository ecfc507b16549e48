# venue-gateway: a virtualenv built in one stage from the lock file, run slim and unprivileged
# in the next (docs/operations.md, "The image").
#   docker build -t venue-gateway .
#   docker run -p 8000:8000 -e GATEWAY_ENV=dev -e GATEWAY_AUTH0__DOMAIN=... venue-gateway
# The same image serves the emulator; the issuer must be the address the gateway calls it by:
#   docker run venue-gateway emulator --host 0.0.0.0 --issuer http://emulator:8001/
# podman keeps HEALTHCHECK only in the Docker format: `podman build --format docker`.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# pip lives in a tools venv of the build stage only; the runtime venv never gets pip or setuptools
RUN python -m venv /opt/tools \
    && python -m venv --without-pip /opt/venv
WORKDIR /src
# dependencies first, exactly as locked (with hashes): this layer is rebuilt only when the lock
# file changes, not on every change to the code
COPY requirements.lock ./
RUN /opt/tools/bin/pip --python /opt/venv/bin/python install --no-cache-dir \
        --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY settings ./settings
COPY emulator ./emulator
COPY app ./app
RUN /opt/tools/bin/pip --python /opt/venv/bin/python install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="venue-gateway" \
      org.opencontainers.image.description="Auth0 password login in front of the venue API"
# No pip or setuptools in the image, whichever the base: Debian's python3-venv brings their
# wheels (/usr/share/python-wheels, purged with the packages that need them), the official image
# installs both into site-packages with pip* in /usr/local/bin, and ensurepip may bundle wheels.
# The runtime needs none of them: /opt/venv is complete.
RUN if dpkg-query --show python3-pip-whl >/dev/null 2>&1; then \
        dpkg --purge python3-venv python3.11-venv python3-pip-whl python3-setuptools-whl; \
    fi \
    && rm -rf /usr/share/python-wheels /usr/local/bin/pip /usr/local/bin/pip3* \
        /usr/local/lib/python3*/site-packages/pip \
        /usr/local/lib/python3*/site-packages/pip-*.dist-info \
        /usr/local/lib/python3*/site-packages/setuptools \
        /usr/local/lib/python3*/site-packages/setuptools-*.dist-info \
        /usr/local/lib/python3*/site-packages/pkg_resources \
        /usr/local/lib/python3*/site-packages/_distutils_hack \
        /usr/local/lib/python3*/site-packages/distutils-precedence.pth \
        /usr/local/lib/python3*/ensurepip/_bundled/*.whl
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
# `gateway healthcheck` finds what this container runs (the gateway or the emulator) and asks
# its liveness route; one word per argument, as podman's Docker API splits on spaces
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["gateway", "healthcheck"]
STOPSIGNAL SIGTERM
# `gateway serve`: uvicorn with the app factory (app.main:create_app), JSON logs, graceful stop
ENTRYPOINT ["gateway"]
CMD ["serve"]
