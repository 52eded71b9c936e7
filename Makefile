# cartwatch set-up. `make demo` and `make test` work on a fresh machine with Python 3.11:
# they bootstrap uv into var/tools, create .venv from uv.lock, then run.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := var/tools/bin/uv
VENV := .venv
# `make demo DEMO_DIR=/tmp/x` puts the demo's database and digest elsewhere (the load test does)
DEMO_DIR ?= var
DEMO_DB := $(DEMO_DIR)/demo.duckdb
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export PREFECT_HOME ?= $(CURDIR)/var/prefect

.PHONY: install demo test test-slow bench bench-quick lint clean

$(UV):
	$(PYTHON) -m venv var/tools
	var/tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on this project's machines) every run
# would otherwise compile Great Expectations and Prefect from source again (about 6 s a process).
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --extra dev --compile-bytecode --python $(PYTHON)
	touch $@

install: $(VENV)/.installed

# The nightly job on data/sample/ into a fresh embedded DuckDB; prints the digest it wrote.
# Prefect's temporary server gets the start-up budget of the settings (prefect_startup_seconds,
# 600 s), so the demo also runs on a slow, busy machine (docs/operations.md).
demo: install
	rm -f $(DEMO_DB) $(DEMO_DB).wal
	$(VENV)/bin/cartwatch nightly --db $(DEMO_DB) --inbox data/sample --digest-dir $(DEMO_DIR)/digest --as-of "$$(cat data/sample/AS_OF 2>/dev/null || date -u +%Y-%m-%dT%H:%M:%SZ)"
	@echo; echo "==== $(DEMO_DIR)/digest/latest.md ===="; cat $(DEMO_DIR)/digest/latest.md

# Headless Chromium (Debian's package) for the browser test of the HTML digest: installed once, when
# missing and running as root; otherwise that test is skipped with its reason.
test: install
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; } || \
	  echo "chromium could not be installed: the browser test will be skipped"
	$(VENV)/bin/pytest -q

test-slow: install
	$(VENV)/bin/pytest -q -m slow

# The cohort-scale benchmark (1,000 and 10,000 patients; benchmarks/README.md): 15-40 minutes, writes
# benchmarks/results/latest.md and .json. Not part of `make test`. bench-quick: 50 and 100 patients,
# a few minutes, results in var/bench-quick/results/.
bench: install
	$(VENV)/bin/python benchmarks/run_all.py

bench-quick: install
	$(VENV)/bin/python benchmarks/run_all.py --quick

clean:
	rm -rf var $(VENV)
