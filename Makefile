# The README's two commands: `make demo` runs the fleet, `make test` runs the tests.
# Both work on a fresh machine: they create the venv, install, and start the real stack.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint install stack-up stack-down clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/warmfleet stack up
	$(BIN)/warmfleet run --phase market_hours

test: install lint deploy-check alerts-check
	$(BIN)/warmfleet stack exec -- $(BIN)/pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

stack-up: install
	$(BIN)/warmfleet stack up

stack-down: install
	$(BIN)/warmfleet stack down

clean:
	-$(BIN)/warmfleet stack down
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

# helm lint + `helm template | kubernetes-validate --strict` (installs helm with `go install`
# into ~/.cache/warmfleet/bin the first time, about 2 minutes); tests/deploy/ then use that helm
.PHONY: deploy-check
deploy-check: install
	KUBERNETES_VALIDATE=$(BIN)/kubernetes-validate helm/check.sh

# --- faults and alerts (issue 14) ---------------------------------------------------------
# alerts-check: `promtool check rules` + `promtool test rules` on deploy/prometheus/ (installs
# Debian's prometheus package for promtool the first time). chaos: every scenario, fast and
# slow, on a private faults stack (own ports and state dir; never the shared stack), then the
# slow tests (marker `chaos`), which `make test` leaves out.
.PHONY: alerts-check chaos
alerts-check:
	deploy/prometheus/check.sh

chaos: install
	$(BIN)/warmfleet chaos $(CHAOS_ARGS)
	$(BIN)/pytest -m chaos tests/chaos $(PYTEST_ARGS)
