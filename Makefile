# venue-gateway: everything a fresh machine needs comes from here.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: install dev test lint format memcached clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## memcached from Debian's packages when the machine has none
memcached:
	@command -v memcached >/dev/null 2>&1 || { \
	  echo "installing memcached from Debian's packages"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends memcached >/dev/null; }

## run the emulator with the demo tenant and the gateway against it
dev: install
	$(BIN)/gateway dev

## install everything and run the whole test suite
test: install memcached
	$(BIN)/pytest $(PYTEST_ARGS)

## ruff and mypy strict
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
