# Two entry points on a fresh clone: `make demo` and `make test`. Everything else is installed by them.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python

# The platform's Python worker (azure-functions-runtime) needs Python 3.13: tests/platform/test_worker_index.py
# indexes the app with it in a venv of its own. The first python3.13 that runs (pyenv shims may exist and still
# refuse); empty when there is none, and then the worker index check is skipped.
ifeq ($(origin PYTHON313),undefined)
PYTHON313 := $(shell for p in $(HOME)/.pyenv/versions/3.13*/bin/python3.13 $$(command -v python3.13); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && echo "$$p" && break; done)
endif
WORKER_VENV := .venv313
WORKER_RUNTIME := azure-functions-runtime>=1.3,<2

.PHONY: setup worker-venv demo test lint typecheck unit infra bench clean

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: requirements.txt requirements-infra.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]' -r requirements-infra.txt
	touch $@

ifeq ($(strip $(PYTHON313)),)
worker-venv:
	@echo "worker-venv: no Python 3.13 (python3.13 or ~/.pyenv/versions/3.13*): the worker index check will be skipped"
else
worker-venv: $(WORKER_VENV)/.installed
endif

# Only the runtime and the app's requirements, as the platform installs them (no dev tools, not the project).
$(WORKER_VENV)/.installed: requirements.txt Makefile
	rm -rf $(WORKER_VENV)
	$(PYTHON313) -m venv $(WORKER_VENV)
	$(WORKER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check '$(WORKER_RUNTIME)' -r requirements.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

demo: setup
	$(PY) -m localdev.demo

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

unit: setup worker-venv
	$(VENV)/bin/pytest

infra: setup
	bash infra/check.sh

test: lint typecheck infra unit

clean:
	rm -rf $(VENV) $(WORKER_VENV) node_modules .local .pytest_cache .mypy_cache .ruff_cache
