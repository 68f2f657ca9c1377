# The targets README tells users to run. `make serve` and `make test` are the two set-up
# commands: each builds its own virtual environment on first use.
PYTHON ?= python3
VENV ?= .venv
SERVE_VENV ?= .venv-serve
UV = $(VENV)/bin/uv

.PHONY: serve test check data dry-run install install-serve lint bento benchmark-service pipeline benchmark-models loadtest soak clean loadtest soak

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade uv
	$(UV) pip install --python $(VENV)/bin/python -e ".[serve,train,loadtest,dev,v2-clients]" \
		--override tests/v2-clients-overrides.txt
	touch $@

# Serve-only: bentoml + onnxruntime + numpy + pillow + pydantic, no torch.
$(SERVE_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(SERVE_VENV)
	$(SERVE_VENV)/bin/python -m pip install -q --upgrade uv
	$(SERVE_VENV)/bin/uv pip install --python $(SERVE_VENV)/bin/python -e ".[serve]"
	touch $@

install: $(VENV)/.installed
install-serve: $(SERVE_VENV)/.installed

## Serve the model that models/served.json names on http://localhost:3000
serve: install-serve
	$(SERVE_VENV)/bin/bentoml serve

## MNIST in $$MNIST_DATA_DIR (CI: ../shared/data, never downloaded), else downloaded into ./data; sha256 checked
data: install
	$(VENV)/bin/mnist data

## Lint, check the training pipeline end to end (--dry-run), and run the whole test suite
## (MNIST from `make data`); the serve-only venv is tested too. What .ci/run runs.
test: install install-serve data lint dry-run
	$(VENV)/bin/python -m pytest

## ruff check, ruff format --check, mypy (strict over contract/, service/, training/ and harness/)
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## The inner loop, about a minute: lint, types and the unit tests (tests/unit: no server, no training;
## MNIST from `make data`) less the few marked slow. `make test` is the whole suite.
check: lint
	$(VENV)/bin/python -m pytest tests/unit -m "unit and not slow and not server" -q -p no:cacheprovider

## The training pipeline on 1,000 images for 1 epoch: train -> export -> evaluate, nothing promoted
dry-run: install data
	$(VENV)/bin/mnist pipeline --dry-run --run-dir results/dry-run --models-dir results/dry-run/models

## Build the serving bento (service/ + the served model only); then `bentoml containerize mnist:latest`
bento: install-serve
	$(SERVE_VENV)/bin/python -m service.bento

BACKEND ?= podman
.PHONY: container benchmark-container
## Build the serving image mnist:<served model version>: podman on a Debian base made here (debootstrap),
## or BACKEND=docker from bentofile.yaml's base image; then see docs/deploy.md
container: install-serve
	$(SERVE_VENV)/bin/python -m deploy.container build --backend $(BACKEND)

## Image size, build time and container start-up to /readyz -> BENCHMARKS.md (ARGS=--cold: as on a fresh machine)
benchmark-container: install
	$(VENV)/bin/python -m benchmarks.bench_container $(ARGS)

## /predict and /predict_batch under locust vs in-process onnxruntime and a plain Starlette baseline
benchmark-service: install
	$(VENV)/bin/python -m benchmarks.bench_service $(ARGS)

PEERS_VENV ?= .venv-peers
# The servers users would pick instead (the `peers` extra): never part of `make install` or CI.
$(PEERS_VENV)/.installed: pyproject.toml $(VENV)/.installed
	$(PYTHON) -m venv $(PEERS_VENV)
	$(UV) pip install --python $(PEERS_VENV)/bin/python -r pyproject.toml --extra peers
	touch $@

.PHONY: bench-peers
## This project beside FastAPI, TorchServe (needs java), KServe, Triton (PyTriton), LitServe and Ray Serve:
## a sweep of each peer's settings, then all side by side -> BENCHMARKS.md (ARGS="--rounds 3 ...")
bench-peers: install $(PEERS_VENV)/.installed
	$(VENV)/bin/python -m benchmarks.bench_peers --sweep $(ARGS)

## In-process onnxruntime throughput of every architecture, side by side -> BENCHMARKS.md
benchmark-models: install
	$(VENV)/bin/python -m benchmarks.bench_models

## Retrain mnist-cnn, export, evaluate and promote it (ARGS="--epochs 5 ...")
pipeline: install
	$(VENV)/bin/mnist pipeline $(ARGS)

## Load-test the service (starts one locally unless MNIST_SERVICE_URL is set; ARGS="--users 16 ...")
loadtest: install
	$(VENV)/bin/python -m loadtests.run $(ARGS)

## Soak: 10 minutes of load, and the local server's memory must not grow by more than 10%
soak: install
	$(VENV)/bin/python -m loadtests.run --soak $(ARGS)

clean:
	rm -rf $(VENV) $(SERVE_VENV) .pytest_cache .ruff_cache build *.egg-info
