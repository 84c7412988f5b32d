# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
NODE_STAMP := node_modules/.installed

.PHONY: run test lint typecheck pytest install install-test node-tools package bench clean messages

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(PY)
	$(PIP) install --quiet -e '.[test]'
	touch $@ $(STAMP_RUN)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP_RUN) $(NODE_STAMP)
install-test: $(STAMP_TEST) $(NODE_STAMP)
node-tools: $(NODE_STAMP)

## make run: the bot on the embedded default plus the Agents Playground; Ctrl-C stops both.
run: install
	$(PY) -m cli.devrun

## make lint: ruff's rules, ruff's formatting (checked, not applied) and mypy — what pre-commit runs.
lint: install-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

## make test: lint, then the whole test suite (SQLite, PostgreSQL, end-to-end).
## Compiled bytecode is kept in the virtual environment, never in the checkout, even where
## PYTHONDONTWRITEBYTECODE is set: each test process, and each interpreter a test starts, would
## otherwise compile the project (and rewrite the tests' asserts) again.
test: lint
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(abspath $(VENV))/pycache $(VENV)/bin/pytest -q

## make package: the Teams app package dist/appPackage.zip (MICROSOFT_APP_ID fills the ids).
package: install
	$(VENV)/bin/cspbot package

## make messages: extract every translatable message into the template and merge it into each
## language's catalog (translators then fill the new, empty entries; see docs/i18n.md).
messages: install
	$(VENV)/bin/pybabel --quiet extract -F babel.cfg --no-location --sort-output \
		-k N_ --project=cspbot -o services/translations/messages.pot .
	$(VENV)/bin/pybabel --quiet update --no-fuzzy-matching --ignore-obsolete \
		-i services/translations/messages.pot -d services/translations

bench: install-test
	$(PY) bench/turns.py
	$(PY) bench/turns_honest.py
	$(PY) bench/partner_center.py
	$(PY) bench/user_sync.py

clean:
	rm -rf $(VENV) node_modules dist var .pytest_cache .mypy_cache .ruff_cache
