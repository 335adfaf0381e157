# Two entry points for a fresh machine (see README): `make run` and `make test`.
# torch is installed first and pinned: on a CPU box a plain `pip install torch` pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
CONFIG ?= configs/fraud-detection.yaml

.PHONY: setup run run-ltv run-recs run-forecast test test-fast bench lint clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $@

setup: $(BIN)/.installed

run: setup  ## the main job: fraud detection on an embedded local Ray
	$(BIN)/specweave-ray run $(CONFIG) --root .specweave/increments

run-ltv: setup
	$(BIN)/specweave-ray run configs/ltv-prediction.yaml --root .specweave/increments

run-recs: setup  ## recommendation: the workflow's own spec, on generated interactions
	$(BIN)/specweave-ray run configs/recommendation.yaml --root .specweave/increments

run-forecast: setup  ## forecasting: weekly sales of stores x products, 12 weeks ahead
	$(BIN)/specweave-ray run configs/sales-forecasting.yaml --root .specweave/increments

test: setup  ## the whole suite (real Ray, MLflow, Optuna)
	$(BIN)/python -m pytest -q --durations=60  # the slowest tests, in CI's log

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/bench_sweep.py

lint: setup
	$(BIN)/ruff check specweave_ray tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
