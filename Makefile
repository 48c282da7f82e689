# Two commands: `make demo` and `make test`. Each creates .venv if missing.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean venv fuzz browser

$(BIN)/python:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "python3.11 is required (set PYTHON=...)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(STAMP)

venv: $(STAMP)

# Debian's Chromium for the browser tests (tests/browser.py drives it through Playwright's
# Python package, never with a browser build of Playwright's own). Installed only when missing;
# the package lists are refreshed only when the install cannot find the package without it.
# The tests read the same MAILFLOW_CHROMIUM (set it for a Chromium elsewhere).
MAILFLOW_CHROMIUM ?= /usr/bin/chromium
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT      := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -qq -o=Dpkg::Use-Pty=0 \
            -o DPkg::Lock::Timeout=300
APT_PKGS := chromium

$(MAILFLOW_CHROMIUM):
	@echo "installing Debian's chromium (browser tests)"
	@$(APT) install -y --no-install-recommends $(APT_PKGS) >/dev/null 2>&1 \
	  || { $(APT) update >/dev/null && $(APT) install -y --no-install-recommends $(APT_PKGS) >/dev/null; }
	@test -x $(MAILFLOW_CHROMIUM) || { echo "$(MAILFLOW_CHROMIUM) missing after installing $(APT_PKGS)"; exit 1; }

browser: $(MAILFLOW_CHROMIUM)

demo: $(STAMP)
	$(BIN)/mailflow demo

# Two test processes, each taking whole files (module fixtures, such as one broker with its
# recorded runs, are made once): most tests wait on a job or a broker process, so two keep both
# cores busy. `python -m pytest` alone runs serially.
test: $(STAMP) $(MAILFLOW_CHROMIUM)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# the API's property-based tests with fresh random data (the default run is seeded)
fuzz: $(STAMP)
	MAILFLOW_FUZZ_EXPLORE=1 $(BIN)/python -m pytest -q tests/test_api_schema.py

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/mailflow bench --json

clean:
	rm -rf $(VENV) .mailflow
