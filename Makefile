# agcn: two commands on a fresh machine.
#   make demo   creates .venv, installs agcn, runs the pipeline on synthetic data
#   make test   creates .venv, installs agcn with the dev tools, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed first where no torch is present; the project's own
# requirement is a range (users elsewhere bring a CUDA build).
TORCH_CPU ?= torch==2.13.0
DEMO := demo

.PHONY: demo test bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_CPU)
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/agcn synth $(DEMO)/raw --seed 0
	$(BIN)/agcn preprocess $(DEMO)/raw $(DEMO)/ntu60-xsub --benchmark ntu60-xsub
	$(BIN)/agcn info $(DEMO)/ntu60-xsub/train.h5
	$(BIN)/agcn info $(DEMO)/ntu60-xsub/test.h5

test: $(VENV)/.installed
	$(BIN)/python -m pytest

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/bench_preprocess.py --files 2000

lint: $(VENV)/.installed
	$(BIN)/ruff check agcn_cli tests benchmarks
	$(BIN)/ruff format --check agcn_cli tests benchmarks

format: $(VENV)/.installed
	$(BIN)/ruff format agcn_cli tests benchmarks
	$(BIN)/ruff check --fix agcn_cli tests benchmarks

clean:
	rm -rf $(VENV) $(DEMO) bench_out .pytest_cache
