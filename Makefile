# agcn: two commands on a fresh machine.
#   make demo   creates .venv, installs agcn, runs the pipeline on synthetic data
#   make test   creates .venv, installs agcn with the dev tools, runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch, installed first where no torch is present; the project's own
# requirement is a range (users elsewhere bring a CUDA build).
TORCH_CPU ?= torch==2.13.0
# The BlazePose model files of `agcn extract` (the video extra): shipped inside this wheel, installed
# without its dependencies (agcn reads the two files, never imports it; data_specs/pose.md).
POSE_MODELS ?= mediapipe==0.10.21
DEMO := demo
# The demo's synthetic classes (configs/demo-cpu.toml says why): 8 clearly distinct actions, 64
# files each, 30-50 frames.
DEMO_SYNTH := --classes 8,10,23,24,26,27,35,52 --samples-per-class 64 --min-frames 30 --max-frames 50

.PHONY: demo watch-demo test bench lint format clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q $(TORCH_CPU)
	$(BIN)/python -m pip install -q -e ".[dev,viz]"
	$(BIN)/python -m pip install -q --no-deps $(POSE_MODELS)
	touch $@

# The whole story on synthetic data (scripts/demo.sh): synth -> preprocess -> streams -> train
# the four streams in one command (configs/demo-cpu.toml, ~6 minutes on 2 cores) -> 10-clip eval
# of each and the fusions
# -> the training curves and a skeleton animation (matplotlib: the viz extra, installed above).
demo: $(VENV)/.installed
	AGCN=$(BIN)/agcn scripts/demo.sh $(DEMO) configs/demo-cpu.toml $(DEMO_SYNTH)

# Actions over time (scripts/watch_demo.sh): a long two-person synthetic recording, a small model
# trained on windows (~1 minute on 2 cores), agcn watch from the file and from a pipe, the timeline
# picture and the labelled animation.
watch-demo: $(VENV)/.installed
	AGCN=$(BIN)/agcn PYTHON=$(BIN)/python scripts/watch_demo.sh watch-demo

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
	rm -rf $(VENV) $(DEMO) watch-demo bench_out .pytest_cache
