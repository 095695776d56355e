# One obvious command per task. Everything installs into .venv from uv.lock.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
SYNCED := $(VENV)/.synced
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never

.PHONY: install run test lint fmt clean example

run: $(SYNCED)  ## serve authgate on http://127.0.0.1:8080 with the embedded SQLite database
	$(BIN)/authgate migrate
	$(BIN)/authgate serve

install: $(SYNCED)  ## create .venv with authgate in it; `. .venv/bin/activate` puts `authgate` on PATH
	@echo 'authgate is installed in .venv: run `. .venv/bin/activate` to put it on PATH.'

test: lint  ## lint, type-check and run the whole test suite
	$(BIN)/pytest
	@echo "Again with encrypted access tokens (SQLite, in-process):"
	AUTHGATE_TEST_ENCRYPT_TOKENS=1 AUTHGATE_TEST_POSTGRES_URL= AUTHGATE_TEST_MYSQL_URL= \
		AUTHGATE_TEST_REDIS_URL= $(BIN)/pytest -q --ignore=tests/test_server.py \
		--ignore=tests/test_bench_smoke.py --ignore=tests/test_supervision.py

lint: $(SYNCED)
	$(BIN)/ruff format --check src tests examples benchmarks
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/mypy
	$(BIN)/mypy benchmarks

fmt: $(SYNCED)
	$(BIN)/ruff format src tests examples
	$(BIN)/ruff check --fix src tests examples

example: $(SYNCED)  ## authgate with EdDSA keys on :8080 (AUTHGATE_PORT), and site B trusting its key set on :8082 (SITE_B_PORT)
	@mkdir -p data/example
	AUTHGATE_DATA_DIR=data/example AUTHGATE_SIGNING_ALGORITHM=EdDSA $(BIN)/authgate migrate
	AUTHGATE_DATA_DIR=data/example AUTHGATE_SIGNING_ALGORITHM=EdDSA $(BIN)/authgate serve & \
		authgate=$$!; trap 'kill $$authgate' EXIT INT TERM; \
		$(BIN)/python examples/site_b.py  # finds authgate at AUTHGATE_PORT, or SITE_B_AUTHGATE_URL

BENCH_WORKERS ?= 1 2
BENCH_ARGS ?=
.PHONY: bench
bench: $(SYNCED)  ## load-test authgate against a bare Starlette app (PostgreSQL too when AUTHGATE_TEST_POSTGRES_URL is set)
	$(BIN)/python benchmarks/run.py --workers $(BENCH_WORKERS) $(BENCH_ARGS)

SOAK_MINUTES ?= 30
SOAK_ARGS ?=
.PHONY: soak
soak: $(SYNCED)  ## mixed load for SOAK_MINUTES; does worker memory reach a plateau? (PostgreSQL when AUTHGATE_TEST_POSTGRES_URL is set)
	$(BIN)/python benchmarks/soak.py --minutes $(SOAK_MINUTES) $(SOAK_ARGS)

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "authgate needs Python >= 3.11 as '$(PYTHON)'"; exit 1; }
	@$(PYTHON) -m venv $(VENV) || \
		{ echo "Creating a virtual environment failed; on Debian: apt-get install python3-venv"; exit 1; }

$(BIN)/uv: $(BIN)/python
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip >/dev/null
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(SYNCED): pyproject.toml uv.lock $(BIN)/uv
	$(BIN)/uv sync --frozen --quiet
	@touch $@

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
