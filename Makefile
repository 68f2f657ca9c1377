# The targets README tells users to run. `make serve` and `make test` are the two set-up
# commands: each builds its own virtual environment on first use, from uv.lock.
PYTHON ?= python3
VENV ?= .venv
SERVE_VENV ?= .venv-serve
# uv itself lives in its own small venv: `uv sync` keeps the others exactly as locked.
UV_VENV ?= .venv-uv
UV_VERSION ?= 0.13.10
UV = $(UV_VENV)/bin/uv
# Every install syncs from uv.lock and refuses a lock that pyproject.toml has moved away from.
SYNC = $(UV) sync --locked --python $(PYTHON)
DEV_EXTRAS = --extra serve --extra train --extra loadtest --extra dev --extra v2-clients
# What the bento and the image install: uv.lock's `serve` (CPU) and `gpu` (CUDA) resolutions,
# exported for bentofile.yaml (`make lock` writes them, `make lock-check` keeps them current).
EXPORT = $(UV) export --quiet --frozen --no-hashes --no-emit-project --no-header --no-annotate

.PHONY: serve test check data dry-run install install-serve lint lock lock-check bento benchmark-service pipeline benchmark-models loadtest soak clean

$(UV):
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install -q "uv==$(UV_VERSION)"

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(VENV) $(SYNC) $(DEV_EXTRAS)
	touch $@

# Serve-only: bentoml + onnxruntime + numpy + pillow + pydantic, no torch.
$(SERVE_VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(SERVE_VENV) $(SYNC) --extra serve
	touch $@

install: $(VENV)/.installed
install-serve: $(SERVE_VENV)/.installed

## Bring uv.lock up to pyproject.toml's extras (locked versions kept where they still fit;
## ARGS=--upgrade moves everything to the newest) and export the bento's requirements; commit all three
lock: $(UV)
	$(UV) lock $(ARGS)
	$(EXPORT) --extra serve -o deploy/requirements/serve.txt
	$(EXPORT) --extra gpu -o deploy/requirements/gpu.txt

## Fail when pyproject.toml and uv.lock disagree, or the bento's requirements are not uv.lock's
lock-check: $(UV)
	$(UV) lock --check
	@for extra in serve gpu; do \
		$(EXPORT) --extra $$extra | diff -q - deploy/requirements/$$extra.txt >/dev/null \
		|| { echo "deploy/requirements/$$extra.txt is not uv.lock's $$extra: run make lock"; exit 1; }; \
	done

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

## ruff check, ruff format --check, mypy (strict over contract/, service/, training/ and harness/), yamllint
## (every YAML file: deploy/'s manifests among them; .yamllint.yaml), and the lock
lint: install lock-check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/yamllint --strict .

## The inner loop, about a minute: lint, types and the unit tests (tests/unit: no server, no training;
## MNIST from `make data`) less the few marked slow. `make test` is the whole suite.
check: lint
	$(VENV)/bin/python -m pytest tests/unit -m "unit and not slow and not server" -q -p no:cacheprovider

## The training pipeline on 1,000 images for 1 epoch: train -> export -> evaluate, nothing promoted
dry-run: install data
	$(VENV)/bin/mnist pipeline --dry-run --run-dir results/dry-run --models-dir results/dry-run/models

## `bentoml build` in the serve-only install: the service, its declared models, uv.lock's serve packages
bento: install-serve
	$(SERVE_VENV)/bin/bentoml build

BACKEND ?= podman
.PHONY: container benchmark-container
## `bentoml build` + `bentoml containerize` into image mnist:<served model version>: podman on a Debian
## base made here (debootstrap), or BACKEND=docker from bentofile.yaml's base image; see docs/deploy.md
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
$(PEERS_VENV)/.installed: pyproject.toml uv.lock $(VENV)/.installed
	UV_PROJECT_ENVIRONMENT=$(PEERS_VENV) $(SYNC) --extra peers
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
	rm -rf $(VENV) $(SERVE_VENV) $(UV_VENV) .pytest_cache .ruff_cache build *.egg-info
