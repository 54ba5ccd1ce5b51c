# Two commands do all the set-up on a fresh machine:
#   make demo   run the default study (installs what it needs)
#   make test   run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON ?= python3
TORCH_PIN ?= torch==2.13.0
STUDY ?= jobs/quick.toml
PRETRAIN ?= text

.PHONY: demo test corpora bench text-packages

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# The pinned CPU build first: a bare torch requirement would pull a multi-GB CUDA build.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

text-packages:
	@bash .ci/text-packages.sh

demo: $(VENV)/.installed text-packages
	$(PY) -m effdata.run --pretrain $(PRETRAIN) --study $(STUDY)

corpora: $(VENV)/.installed text-packages
	$(PY) -m effdata.corpora

test: $(VENV)/.installed text-packages
	$(PY) -m pytest -q

bench: $(VENV)/.installed
	$(PY) -m effdata.bench
