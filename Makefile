# venue-gateway: everything a fresh machine needs comes from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=
LOCK     := requirements.lock
DEV_LOCK := requirements-dev.lock

.PHONY: install lock dev test bench lint format system-packages node-packages image-base image clean

## exactly the versions (and hashes) of the lock files; the project itself without dependencies
$(STAMP): pyproject.toml $(DEV_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

## Lock files, one command after adding or raising a dependency in pyproject.toml (or after a merge
## that did): requirements.lock (what the image installs) and requirements-dev.lock (plus the test
## and bench extras, the same versions), for every platform, with hashes. Versions already locked
## stay unless pyproject.toml needs others; `make lock UPGRADE=1` takes the newest allowed.
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
             --generate-hashes --no-header --quiet $(if $(UPGRADE),--upgrade)

lock:
	@test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet 'uv>=0.5'; }
	$(UV_COMPILE) -o $(LOCK)
	$(UV_COMPILE) --extra test --extra bench -c $(LOCK) -o $(DEV_LOCK)

## Debian packages the tests need, installed when the machine lacks them:
## memcached, PostgreSQL (throw-away test servers), Chromium (the docs-page browser test),
## Node.js with npm (node-auth0 against the emulator over TLS, the generated TypeScript client),
## twemproxy and HAProxy (the memcached pool and the replicas topology), podman, runc and
## debootstrap (the image, built and run by tests/ops/test_image.py)
APT_MISSING = $(if $(shell command -v memcached),,memcached) \
              $(if $(wildcard /usr/sbin/nutcracker),,nutcracker) \
              $(if $(wildcard /usr/sbin/haproxy),,haproxy) \
              $(if $(shell command -v podman),,podman) \
              $(if $(shell command -v runc),,runc) \
              $(if $(wildcard /usr/sbin/debootstrap),,debootstrap) \
              $(if $(wildcard /usr/lib/postgresql/*/bin/initdb),,postgresql) \
              $(if $(shell command -v chromium),,chromium) \
              $(if $(shell command -v node),,nodejs) \
              $(if $(shell command -v npm),,npm)

system-packages:
	@missing="$(strip $(APT_MISSING))"; if [ -n "$$missing" ]; then \
	  echo "installing from Debian's packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

## the npm packages of each package below, exactly as its lock file says; again when the lock
## file changes. tests/node: node-auth0; tests/contract/typescript: the generated TypeScript client
NODE_DIRS := tests/node tests/contract/typescript

%/node_modules: %/package-lock.json | system-packages
	npm ci --prefix $* --no-audit --no-fund --loglevel=error
	touch $@

node-packages: $(addsuffix /node_modules,$(NODE_DIRS))

## run the emulator with the demo tenant and the gateway against it
dev: install
	$(BIN)/gateway dev

## the image's stand-in base (Docker Hub is out of reach here): Debian bookworm's Python 3.11 in a
## debootstrap, imported into podman once and reused; nothing when podman cannot run containers
## (tests/ops/test_image.py then says so and skips)
BASE_IMAGE := localhost/venue-gateway-base:bookworm

image-base: system-packages
	@if podman --runtime runc info >/dev/null 2>&1; then \
	  ops/container/stand-in-base.sh $(BASE_IMAGE); \
	else echo "podman cannot run here: no image base, the image test will be skipped"; fi

## the image as venue-gateway:local (ops/container/podman.sh has the options and why)
image: image-base
	ops/container/podman.sh build -t venue-gateway:local .

## install everything and run the whole test suite
test: install system-packages node-packages image-base
	$(BIN)/pytest $(PYTEST_ARGS)

## the benchmark (docs/performance.md), about 6 minutes; wrk, hey and memcached from Debian's
## packages when missing. Options: make bench BENCH_ARGS='--workers 2 --launcher reuseport'
BENCH_ARGS ?=
BENCH_MISSING = $(if $(shell command -v wrk),,wrk) $(if $(shell command -v hey),,hey) \
                $(if $(shell command -v memcached),,memcached)

bench: install
	@missing="$(strip $(BENCH_MISSING))"; if [ -n "$$missing" ]; then \
	  echo "installing from Debian's packages: $$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	$(BIN)/python -m bench.run $(BENCH_ARGS)

## ruff and mypy strict; hadolint on the Dockerfile; compose.yaml against the vendored Compose schema
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile
	$(BIN)/check-jsonschema --schemafile ops/compose-spec.json compose.yaml

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
