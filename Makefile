# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS := pyproject.toml setup.py $(wildcard kftools/*.c kftools/*/*.c kftools/*/*.h)
# everything the tests and the linters use (make venv, test, lint, ...); a full install also stands for the core's
STAMP := $(VENV)/.installed
# the core alone: what the demo runs (simulate and tail), nothing more
CORE_STAMP := $(VENV)/.installed-core

.PHONY: venv demo test bench torture samples lint clean

venv: $(STAMP)

$(STAMP): $(DEPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,lint]'
	touch $(STAMP) $(CORE_STAMP)

$(CORE_STAMP): $(DEPS)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $(CORE_STAMP)

demo: $(CORE_STAMP)
	$(PY) -m compileall -q kftools
	$(PY) -m kftools.demo

# Bytecode first: where the environment says PYTHONDONTWRITEBYTECODE, every command the tests start (hundreds of
# processes) compiled kftools from source, 0.1 s each; compileall writes what is stale and nothing else.
test: venv
	$(PY) -m compileall -q kftools tests examples
	$(PY) -m pytest -x -p no:cacheprovider -n auto --dist loadfile tests

torture: venv
	$(PY) -m pytest -p no:cacheprovider -m slow tests/reliability

bench: venv
	$(PY) -m pip install -q -e '.[test,bench]'  # iceoryx2, compared in the shared-host latency figures
	$(VENV)/bin/kftools bench all --out bench/results.json

samples: venv
	$(PY) sample_journals/generate.py

lint: venv
	$(VENV)/bin/ruff check kftools tests bench examples sample_journals
	$(VENV)/bin/mypy kftools

clean:
	rm -rf $(VENV) build *.egg-info kftools/*.so kftools/*/*.so
