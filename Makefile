# Two commands for a fresh machine (see README): `make quickstart` and `make test`.
# Both create .venv and install rmdt with every extra through constraints.txt (torch==2.13.0, CPU)
# on first use.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python

QUICKSTART_RUN := runs/quickstart__$(shell date +%Y%m%d-%H%M%S)

.PHONY: quickstart test bench

$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev,atari,memory-maze,mujoco,popgym,minigrid]"
	touch $@

quickstart: $(VENV)/.installed
	$(PY) train.py configs/tmaze/quickstart.yaml --run-dir $(QUICKSTART_RUN)
	$(PY) evaluate.py $(QUICKSTART_RUN)

test: $(VENV)/.installed
	$(PY) -m pytest

bench: $(VENV)/.installed
	$(PY) bench/perf/loader.py
	$(PY) bench/perf/speed.py --throughput
	$(PY) bench/perf/speed.py $(if $(REFERENCE),--reference $(REFERENCE))  # REFERENCE=/tmp/rate_ref: an exported RATE repository
