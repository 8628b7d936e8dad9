# Celerity: the single entry point for people and CI. `make` lists the targets.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help venv redis browser demo test lint bench

help: ## List the targets
	@echo "Celerity make targets:"
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

venv: $(STAMP) ## Create .venv and install the project with test extras

# The stamp makes the install re-run only when pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

redis: ## Make sure redis-server is installed (apt-get when missing)
	bash deploy/ensure-redis.sh

browser: ## Make sure chromium and chromedriver are installed (apt-get when missing)
	bash deploy/ensure-chromium.sh

demo: venv redis ## Run examples/demo.py
	$(BIN)/python examples/demo.py

test: venv redis browser ## Run the test suite against a real redis-server and chromium
	$(BIN)/python -m pytest -q

lint: venv ## ruff on the tree, mypy on engine/
	$(BIN)/ruff check .
	$(BIN)/mypy engine/

bench: venv ## Run the benchmarks (python -m bench)
	@if [ -d bench ]; then \
		$(BIN)/python -m bench; \
	else \
		echo "bench: no bench/ package yet; nothing to measure"; \
	fi
