# Two commands do all the set-up on a fresh machine:
#   make demo   run the default study (installs what it needs)
#   make test   run the tests
VENV ?= .venv
PY := $(VENV)/bin/python
SYSTEM_PYTHON ?= python3
TORCH_PIN ?= torch==2.13.0
STUDY ?= jobs/quick.toml
PRETRAIN ?= text

.PHONY: demo test check-reports corpora bench text-packages

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

# Three pytest workers (pytest-xdist), one thread each, on two cores: the SLURM tests stay in one worker
# (xdist_group) and spend most of their 4 minutes waiting on the cluster, so a third worker fills the core
# they leave idle (587 tests: 8 min 22 s against 9 min 28 s with two; docs/development.md has the later times).
# TEST_WORKERS=0 runs it in one process.
# The committed reports' regeneration (-m reports: about 4 CPU-minutes, 2 minutes on two workers) is `make check-reports`;
# `make test` regenerates a report of each kind (tests/test_regenerate.py, IN_SUITE). CI runs both.
TEST_WORKERS ?= 3
test: $(VENV)/.installed text-packages
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup -m "not reports"

# The committed studies reproduce: every committed report regenerated from its table and compared with the committed
# files, and the cheapest runs of each reproducible table re-run bit for bit in a fresh home, two at a time.
check-reports: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --dist loadgroup -m reports tests/test_regenerate.py tests/test_committed_runs.py

bench: $(VENV)/.installed
	$(PY) -m effdata.bench
