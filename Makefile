# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-all test-ray lint format bench bench-gpu clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first and pinned: a bare requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/globalconv compare --jobs 2 --out runs/compare
	$(BIN)/globalconv report runs/compare --reference results

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m ''

# the Ray executor against a local Ray instance: the optional extra installed, then its tests
# (without ray they skip inside `make test`)
test-ray: $(STAMP)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev,ray]'
	$(BIN)/python -c "import ray"  # an install that does not import must fail here, not skip
	$(BIN)/python -m pytest -q tests/test_ray_executor.py

# ruff, then the import contracts of pyproject.toml ([tool.importlinter]: imports run one way)
lint: $(STAMP)
	$(BIN)/ruff check src tests reference
	$(BIN)/ruff format --check src tests reference
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix src tests reference
	$(BIN)/ruff format src tests reference

bench: $(STAMP)
	$(BIN)/globalconv bench op

# On a machine with one CUDA GPU: op, mixers, FlashFFTConv and the quick suite (~8 min) -> runs/gpu
bench-gpu: $(STAMP)
	$(BIN)/globalconv bench gpu --out runs/gpu

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
