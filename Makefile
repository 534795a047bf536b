# ferroserve developer entry points. `make help` lists them.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# Debian packages the test suite needs: chromium (the dashboard test), prometheus (promtool
# and a real Prometheus for the Grafana/alert-rule test), nginx (the gRPC load balancer in front
# of three replicas, tests/e2e/test_replicas.py) and redis-server (the Feast-layout
# Redis store's tests). Keep CI self-installing.
.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-12s %s\n", $$1, $$2}'

.PHONY: install
install: ## install ferroserve (builds the Rust extension in release mode)
	$(PIP) install .

.PHONY: install-dev
install-dev: ## editable install with test and lint dependencies
	@# No make jobserver for the extension's cargo (MAKEFLAGS cleared): under `make -j` it
	@# would share make's job slots with the downloads instead of using every core.
	MAKEFLAGS= $(PIP) install -e ".[dev]"

.PHONY: build-dev
build-dev: ## rebuild the Rust extension into the editable install
	$(PIP) install -e ".[dev]" --no-deps --no-build-isolation

.PHONY: protos
protos: ## regenerate the descriptor set and type stubs from protos/
	$(PYTHON) tools/gen_protos.py

.PHONY: lint
lint: ## ruff, mypy, stubtest, rustfmt, clippy, stale-proto check
	$(PYTHON) -m ruff check python tests benches tools
	$(PYTHON) -m ruff format --check python tests benches tools
	$(PYTHON) -m mypy
	$(PYTHON) -m mypy.stubtest ferroserve._core
	$(PYTHON) tools/gen_protos.py --check
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

.PHONY: test-rust
test-rust: ## cargo tests of the pure Rust crates
	cargo test --workspace --exclude ferroserve-python

.PHONY: build-rust-tests
build-rust-tests: ## build the cargo tests without running them
	MAKEFLAGS= cargo test --workspace --exclude ferroserve-python --no-run

.PHONY: test-python
test-python: ## the pytest suite (unit and end-to-end with tritonclient)
	FEAST_PYTHON="$(if $(wildcard $(FEAST_VENV)/bin/python),$(CURDIR)/$(FEAST_VENV)/bin/python,$(FEAST_PYTHON))" \
	  $(PYTHON) -m pytest

# Feast (for the test that has Feast itself write Redis) lives in a venv of its own: it pins
# pandas < 3, which the suite's environment is past.
FEAST_VENV := .venv-feast
FEAST_VERSION := 0.67.0

.PHONY: feast-venv
feast-venv: ## a separate venv with feast[redis] for tests/e2e/test_feast_layout.py (~90 s once)
	@if $(FEAST_VENV)/bin/python -c "import feast" 2>/dev/null; then exit 0; fi; \
	$(PYTHON) -m venv $(FEAST_VENV) && \
	$(FEAST_VENV)/bin/python -m pip install --quiet "feast[redis]==$(FEAST_VERSION)"

.PHONY: system-deps
system-deps: ## Debian packages the tests need (apt-get, as root or with sudo)
	@missing=""; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if ! command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: install$$missing yourself (no apt-get here); their tests skip until then"; \
	  exit 0; fi; \
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	echo "system-deps: apt-get install$$missing"; \
	$$sudo apt-get update -qq && \
	DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing

.PHONY: perf-analyzer
perf-analyzer: ## Triton's perf_analyzer into .perf_analyzer/ (tests/e2e/test_perf_analyzer_http.py, benches)
	PYTHON=$(PYTHON) tools/get_perf_analyzer.sh .perf_analyzer

# The installs and the Rust test build are independent, so they run side by side (each one's
# output printed when it ends): apt-get and the downloads mostly wait on the network, and the
# two cargo builds (release for the extension, debug for the tests: separate lock directories)
# fill each other's single-threaded stretches. Then the tests, one suite after the other.
.PHONY: test
test: ## install everything, then run the whole test suite
	@date -u +"%T make test: installs and the Rust test build, side by side"
	$(MAKE) --no-print-directory -j5 --output-sync=target system-deps install-dev feast-venv perf-analyzer build-rust-tests
	@date -u +"%T make test: the tests"
	$(MAKE) --no-print-directory test-rust test-python
	@date -u +"%T make test: done"

.PHONY: bench
bench: ## serving-core benchmark (perf_analyzer client), figures for docs/benchmarks.md
	$(PYTHON) benches/serving_core.py

.PHONY: demo
demo: install ## install and serve the demo repository
	ferroserve demo
