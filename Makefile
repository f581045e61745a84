# Two commands for a fresh machine (see README): `make quickstart` and `make test`.
# Every target creates .venv and installs rmdt with every extra, the docs tools and the linter
# included, through constraints.txt (torch==2.13.0, CPU) on first use.
# `make lint` runs ruff (configured in pyproject.toml); `make docs` builds the MkDocs site into site/
# with --strict, so a broken link or a page missing from the nav fails.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

QUICKSTART_RUN := runs/quickstart__$(shell date +%Y%m%d-%H%M%S)

.PHONY: quickstart test lint docs bench

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,docs,atari,memory-maze,mujoco,popgym,minigrid,sweep]"
	touch $@

quickstart: $(VENV)/.installed
	$(PY) train.py configs/tmaze/quickstart.yaml --run-dir $(QUICKSTART_RUN)
	$(PY) evaluate.py $(QUICKSTART_RUN)

test: $(VENV)/.installed
	$(PY) -m pytest

lint: $(VENV)/.installed
	$(PY) -m ruff check .

docs: $(VENV)/.installed
	$(PY) -m mkdocs build --strict --site-dir site

bench: $(VENV)/.installed
	$(PY) bench/perf/loader.py
	$(PY) bench/perf/speed.py --throughput
	$(PY) bench/perf/speed.py $(if $(REFERENCE),--reference $(REFERENCE))  # REFERENCE=/tmp/rate_ref: an exported RATE repository
