# scholar-ops: developer and CI entry points. `make test` works on a fresh
# Debian 12 machine as root: it installs what is missing (see scripts/install-deps.sh).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test

# pip may put uv in ~/.local/bin; a recursive variable, so it is looked up after
# `deps` has run.
export PATH := $(HOME)/.local/bin:$(PATH)
UV = $(shell command -v uv 2>/dev/null || echo python3 -m uv)

MYPY_PATHS := scholar_ops blocks tasks flows tests bench
PYTEST_ARGS ?=

.PHONY: help deps system-deps uv sync test test-quick pytest lint typecheck fmt demo up down status bench clean

help:
	@echo "make test    deps, lint (ruff, format check, layers, mypy), then every test"
	@echo "make test-quick  lint, then the tests that start no service (about a minute)"
	@echo "make deps    install uv, Debian packages (postgresql, redis, restic, zstd, prometheus, pushgateway, alertmanager), uv sync"
	@echo "make lint    ruff check, ruff format --check, lint-imports (the layers), mypy"
	@echo "make fmt     ruff format + ruff check --fix"
	@echo "make demo    run the end-to-end demo"
	@echo "make up      start the whole system in the background (Prefect server, worker, deployments,"
	@echo "             Prometheus, AlertManager, the sample app...) in stack-data/ (STACK_HOME=...); prints the URLs"
	@echo "make down    stop everything make up started (data stays); make status: what runs"
	@echo "make bench   run the backup store benchmark"

uv:
	scripts/install-deps.sh uv

system-deps: uv
	scripts/install-deps.sh system

sync: uv
	$(UV) sync --locked

deps: system-deps sync

lint: sync
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run lint-imports
	$(UV) run mypy $(MYPY_PATHS)

typecheck: sync
	$(UV) run mypy $(MYPY_PATHS)

fmt: sync
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

pytest: deps
	$(UV) run pytest $(PYTEST_ARGS)

test: deps lint
	$(UV) run pytest $(PYTEST_ARGS)

test-quick: sync lint
	$(UV) run pytest -m "not services and not e2e" $(PYTEST_ARGS)

demo: deps
	$(UV) run python -m scholar_ops.demo

# The whole system on this machine, in the background (scholar_ops/stack): state, logs and
# data in $(STACK_HOME); `make up` twice is safe, `make down` stops only what it started.
STACK_HOME ?= stack-data
STACK_WORKERS ?= 1

up: deps
	$(UV) run python -m scholar_ops.stack up --home "$(STACK_HOME)" --workers $(STACK_WORKERS)

down:
	$(UV) run python -m scholar_ops.stack down --home "$(STACK_HOME)"

status:  # exit 3 (not running) is an answer, not an error
	$(UV) run python -m scholar_ops.stack status --home "$(STACK_HOME)" || test $$? -eq 3

bench: deps
	$(UV) run python bench/store_bench.py

clean:
	rm -rf .mypy_cache .ruff_cache .pytest_cache
