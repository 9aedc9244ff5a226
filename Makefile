# Two commands from a fresh clone: `make demo` and `make test`. Set-up is shared and
# idempotent: the venv is (re)installed only when pyproject.toml or constraints.txt change.
PYTHON ?= python3.11
VENV   := .venv
STAMP  := $(VENV)/.installed
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export DO_NOT_TRACK ?= 1

.PHONY: setup demo test lint bench clean editor

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/mailflow demo

test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/python -m bench $(BENCH)

# The studio's code editor (CodeMirror 6) is committed built (templates/studio/editor.js), so tests and the
# studio need no npm; this rebuilds it from web/editor/package-lock.json after a change to web/editor/src.
editor:
	cd web/editor && npm ci --no-audit --no-fund && npm run build

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
