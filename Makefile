# lifecycle-pipeline: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

export RUNTIME__DLTHUB_TELEMETRY := false
export AIRFLOW__COSMOS__ENABLE_TELEMETRY := False
export DO_NOT_TRACK := 1

.PHONY: help install demo test test-fast airflow lint format bench clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON) on PATH (or: make PYTHON=/path/to/python3.11 ...)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "installing into $(VENV) (first time: a few minutes)..."
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install the project with its pins

demo: $(STAMP) ## run the nightly pipeline once, end to end, on the local sandbox
	@$(PY) -m lifecycle.cli demo

test: $(STAMP) ## run the test suite (unit, integration, DAG end to end)
	@$(PY) -m pytest

test-fast: $(STAMP) ## the tests without the whole-DAG end-to-end run
	@$(PY) -m pytest -m "not e2e"

airflow: $(STAMP) ## start Airflow (UI on :8080) with the project's DAGs and the sandbox
	@$(PY) -m lifecycle.cli airflow

lint: $(STAMP) ## ruff check + format check
	@$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check plugins dags tests

format: $(STAMP) ## apply ruff fixes and formatting
	@$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format plugins dags tests

bench: $(STAMP) ## measure speed and memory; writes bench/REPORT.md (QUICK=1 small; SCALE=s|m|l the whole night at 10k/100k/1M contacts)
	@$(if $(SCALE),$(PY) bench/scale.py --scale $(SCALE) $(BENCH_ARGS),$(PY) bench/run.py $(if $(QUICK),--quick,))

clean: ## remove generated data, Airflow home and dbt target (keeps .venv)
	rm -rf data airflow_home dbt_project/target dbt_project/logs logs
