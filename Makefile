# One command sets up and runs the main job (`make run`), one sets up and tests (`make test`).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# torch/torchvision pinned to the builds this machine kind keeps on local disk; pyproject only
# asks for torch>=2.4, so any other machine may install what it likes with TORCH_PINS="".
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=
# flags for `convzoo train` in `make run`, e.g. make run ARGS="--epochs 1"
ARGS ?=
# flags for the soak suite, e.g. make soak SOAK_ARGS="--only kills,fuzz --seed 1"
SOAK_ARGS ?=

.PHONY: setup run test test-fast lint bench soak clean

# the data step runs every time: one line and about 4 s when the data set is already there;
# where neither a copy nor a download has it, Debian's package (as root or with password-less
# sudo; apt-get update first where apt does not know it), then the data step again
DATA_PACKAGE ?= dataset-fashion-mnist
APT_GET = $$(test "$$(id -u)" = 0 || echo sudo -n) env DEBIAN_FRONTEND=noninteractive apt-get -qq
setup: $(VENV)/.installed
	$(BIN)/convzoo data fetch || { command -v apt-get >/dev/null && \
	  { $(APT_GET) install -y $(DATA_PACKAGE) || \
	    { $(APT_GET) update && $(APT_GET) install -y $(DATA_PACKAGE); }; } && \
	  $(BIN)/convzoo data fetch; }

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch, torchvision" 2>/dev/null || $(BIN)/pip install -q $(TORCH_PINS)
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps d2l==1.0.3  # the book's package; its pins predate numpy 2
	touch $@

run: setup
	$(BIN)/convzoo train $(ARGS)

# one pytest-xdist worker per core, each module on one worker (its trained fixtures built once):
# the suite took 14:08 in one process on the 2-core machine, over the 10-minute goal
TEST_WORKERS ?= auto
XDIST := -n $(TEST_WORKERS) --dist loadscope

test: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q $(XDIST) $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -q $(XDIST) -m "not slow and not integration" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

bench: setup
	$(BIN)/convzoo bench

# the soak suite (benchmarks/soak/): kills, hostile files, malicious checkpoints, a full disk
# (as root: it mounts a small tmpfs), two writers, a lost torchrun node; 22 min on 2 quiet cores
soak: setup
	OMP_WAIT_POLICY=PASSIVE $(BIN)/python benchmarks/soak/soak.py $(SOAK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache build src/*.egg-info
