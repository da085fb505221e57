# `make test`: create .venv when missing, install the project and everything the tests
# need (torch from this machine's disk, DALI, the local SLURM cluster's packages), run
# the whole suite.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test install slurm-install gpu-check

install: $(STAMP)

# apt-installs slurm-wlm, munge, slurmdbd, MariaDB when missing (root); without root the
# SLURM tests skip, except under CI=true where they fail.
slurm-install:
	slurm/local/install.sh || test "$$CI" != true

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install --quiet -e '.[dev,dali]'
	touch $@

test: $(STAMP) slurm-install
	$(PY) -m pytest

# On a GPU box, from a bare checkout (torch + Triton only, nothing installed): kernel
# correctness, the paper and googlenet_bn conv shapes and the step benchmark (< 8 min on
# one H100); writes results/<date>-<card>/ and prints the overhead table.
gpu-check:
	PYTHONPATH=. python -m cwn_bench.bench.gpu_check
