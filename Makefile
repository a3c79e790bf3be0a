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

STREAMS := joint bone joint-motion bone-motion
DATA := $(DEMO)/ntu60-xsub

# The whole story on synthetic data: synth -> preprocess -> streams -> train the four streams
# (configs/demo-cpu.toml, a few minutes on 2 cores) -> 10-clip eval -> fusion.
demo: $(VENV)/.installed
	rm -rf $(DEMO)
	$(BIN)/agcn synth $(DEMO)/raw --seed 0
	$(BIN)/agcn preprocess $(DEMO)/raw $(DATA) --benchmark ntu60-xsub
	$(BIN)/agcn streams $(DATA)/train.h5
	$(BIN)/agcn streams $(DATA)/test.h5
	for s in $(STREAMS); do \
	  $(BIN)/agcn train $(DATA) --modality $$s --config configs/demo-cpu.toml --out $(DEMO)/runs/$$s || exit 1; \
	done
	mkdir -p $(DEMO)/scores
	for s in $(STREAMS); do \
	  $(BIN)/agcn eval $(DEMO)/runs/$$s/last.pt $(DATA)/test.h5 --clips 10 --out $(DEMO)/scores/$$s.h5 || exit 1; \
	done
	$(BIN)/agcn fuse $(DEMO)/scores/joint.h5 $(DEMO)/scores/bone.h5 --weights 1,1 --out $(DEMO)/scores/two-stream.h5
	$(BIN)/agcn fuse $(DEMO)/scores/joint.h5 $(DEMO)/scores/joint-motion.h5 $(DEMO)/scores/bone.h5 \
	  $(DEMO)/scores/bone-motion.h5 --weights 2,1,2,1 --out $(DEMO)/scores/four-stream.h5

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
