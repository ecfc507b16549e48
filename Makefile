# venue-gateway: everything a fresh machine needs comes from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: install dev test bench lint format system-packages node-packages clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(STAMP)

install: $(STAMP)

## Debian packages the tests need, installed when the machine lacks them:
## memcached, PostgreSQL (throw-away test servers), Chromium (the docs-page browser test) and
## Node.js with npm (node-auth0 against the emulator over TLS, the generated TypeScript client)
APT_MISSING = $(if $(shell command -v memcached),,memcached) \
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

## install everything and run the whole test suite
test: install system-packages node-packages
	$(BIN)/pytest $(PYTEST_ARGS)

## the benchmark (README, Performance), under 3 minutes; wrk and memcached from Debian's
## packages when missing. Options: make bench BENCH_ARGS='--workers 2 --launcher reuseport'
BENCH_ARGS ?=
BENCH_MISSING = $(if $(shell command -v wrk),,wrk) $(if $(shell command -v memcached),,memcached)

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
