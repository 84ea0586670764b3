# Two commands do all the set-up: `make demo` and `make test` (both install into .venv first).
# TORCH_SPEC / TORCH_PIP_ARGS choose the PyTorch build, e.g. for CUDA:
#   make install TORCH_SPEC=torch==2.13.0 TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_PIP_ARGS ?=
PIP = $(VENV)/bin/python -m pip --disable-pip-version-check -q

.PHONY: install demo test test-all bench bench-gpu clean

install: $(VENV)/.installed

# torch first, then everything else with torch pinned to the installed build, so that no dependency
# (nnunetv2 -> torchvision) can swap it for another (multi-GB CUDA) build.
$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "$(TORCH_SPEC)" numpy $(TORCH_PIP_ARGS)
	$(VENV)/bin/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(PIP) install -c $(VENV)/constraints.txt -e ".[test]"
	# openvino (a dependency in pyproject.toml) is the CPU backend of `segment --backend auto`: fail here, not later
	$(VENV)/bin/python -c "import openvino; print('openvino ' + openvino.get_version())"
	touch $@

demo: install
	$(VENV)/bin/rootletseg demo --out demo_output --overwrite

# `make test` (CI) leaves out the cases marked slow; `make test-all` runs everything.
test: install
	$(VENV)/bin/python -m pytest -q -m "not slow"

test-all: install
	$(VENV)/bin/python -m pytest -q

bench: install
	$(VENV)/bin/python bench/bench_levels.py
	$(VENV)/bin/python bench/bench_segment.py
	$(VENV)/bin/python bench/bench_vs_reference.py --margins 15,20,25,30
	$(VENV)/bin/python bench/bench_batch.py

# GPU figures (fp16, on-device accumulation): run on a machine with a CUDA GPU; says so and exits without one
bench-gpu: install
	$(VENV)/bin/python bench/bench_gpu.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
