# `make demo`: create .venv when missing, install the project, run `cwn-bench demo`.
# `make test`: the same venv plus what the tests need (pytest, DALI, TensorBoard, the local SLURM
# cluster's packages, Debian's chromium for the report's browser test), then the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
TORCH_STAMP := $(VENV)/.installed-torch

.PHONY: demo test install slurm-install chromium-install gpu-check

install: $(STAMP)

# torch and torchvision pinned to the releases this machine has on disk (no GPU download);
# a stamp, not $(PY), so that an install cut short is tried again
$(TORCH_STAMP):
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	touch $@

$(DEMO_STAMP): pyproject.toml | $(TORCH_STAMP)
	$(PY) -m pip install --quiet -e .
	touch $@

demo: $(DEMO_STAMP)
	$(VENV)/bin/cwn-bench demo

# apt-installs slurm-wlm, munge, slurmdbd, MariaDB when missing (root); without root the
# SLURM tests skip, except under CI=true where they fail.
slurm-install:
	slurm/local/install.sh || test "$$CI" != true

# apt-installs Debian's chromium when missing (root), for the test that opens the report's
# index.html headless; without root that test skips, except under CI=true where it fails.
chromium-install:
	tests/install_chromium.sh || test "$$CI" != true

$(STAMP): pyproject.toml | $(TORCH_STAMP)
	$(PY) -m pip install --quiet -e '.[dev,dali,tensorboard]'
	touch $@

test: $(STAMP) slurm-install chromium-install
	$(PY) -m pytest

# On a GPU box, from a bare checkout (torch + Triton only, nothing installed): kernel
# correctness, the paper and googlenet_bn conv shapes and the step benchmark (< 8 min on
# one H100); writes results/<date>-<card>/ and prints the overhead table.
gpu-check:
	PYTHONPATH=. python -m cwn_bench.bench.gpu_check
