# Two commands: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean venv fuzz

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "python3.11 is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/mailflow demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# the API's property-based tests with fresh random data (the default run is seeded)
fuzz: $(STAMP)
	MAILFLOW_FUZZ_EXPLORE=1 $(BIN)/python -m pytest -q tests/test_api_schema.py

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/mailflow bench --json

clean:
	rm -rf $(VENV) .mailflow
