# Two entry points that work on a fresh machine (each installs what it needs):
#   make run    the main job: sample events in, proposals out (embedded Postgres, local SQS, no keys)
#   make test   every check and test (starts nothing by hand: the tests use the local PostgreSQL
#               on 127.0.0.1:5432 when it answers, an embedded one otherwise)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)

.PHONY: install run demo serve dev api test check bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)  ## sample events -> proposals pending review (ARGS=--auto-approve executes them)
	$(BIN)/dispute-platform run $(ARGS)

demo: $(STAMP)  ## the whole loop: proposals approved by a demo reviewer, executed, embedded
	$(BIN)/dispute-platform run --auto-approve

serve: $(STAMP)  ## the whole local service: review desk + endpoint on :8003, Dagster UI on :3000, daemon
	$(BIN)/dispute-platform serve

dev: $(STAMP)  ## the Dagster UI on the same storage
	$(BIN)/dispute-platform dev

api: $(STAMP)  ## the decision endpoint on :8003
	$(BIN)/dispute-platform api

check: $(STAMP)  ## lint and format (ruff), generated files up to date, types (mypy, strict on domain/ and store/), Dagster definitions valid (dg check defs, offline)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/build_policies.py --check
	$(BIN)/python scripts/build_sandbox_world.py --check
	$(BIN)/mypy
	home=$$(mktemp -d) && VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(BIN)):$$PATH DAGSTER_HOME=$$home \
		$(BIN)/dg check defs --use-active-venv; status=$$?; rm -rf $$home; exit $$status

test: check  ## everything CI runs
	$(BIN)/python -m pytest -q -p no:cacheprovider
