# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test bench torture samples lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml setup.py $(wildcard kftools/*/*.c kftools/*/*.h)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: venv
	$(PY) -m kftools.demo

test: venv
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
	rm -rf $(VENV) build *.egg-info kftools/journal/*.so
