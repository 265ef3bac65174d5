# Quick start: `make run` (demo + admin) and `make test` (the whole suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCALE ?= full
PYTEST_WORKERS ?= 2

.PHONY: run stop clean-data test test-faults test-scaling test-browser lint format bench schema-doc

$(STAMP): requirements/base.txt requirements/dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py migrate --no-input
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py seed_demo
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py ensure_admin
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py runserver 127.0.0.1:8000

# Stop the embedded PostgreSQL that `make run` and `make test` start when DATABASE_URL is
# unset (it keeps running between commands); the next command starts it again.
stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python -m config.embedded_db stop; \
	else echo "The embedded PostgreSQL is not running (no $(VENV) yet)."; fi

# Stop the embedded PostgreSQL and delete its data (.data/): the next `make run` starts
# from an empty database. A database named by DATABASE_URL is never touched.
clean-data: stop
	rm -rf .data
	@echo "Removed .data/ (the embedded PostgreSQL's data)."

# The suite, then the commerce app in projects with another AUTH_USER_MODEL, each with
# its own settings and test database: Django's auth.User (tests/auth_user_project) and a
# project's own model (tests/custom_user_project). Coverage adds up; the last run reports.
test: $(STAMP)
	$(BIN)/pytest -n $(PYTEST_WORKERS) -m "not faults and not browser and not scaling" --cov --cov-report=
	$(BIN)/pytest --ds tests.custom_user_project.settings tests/custom_user_project \
		--cov --cov-append --cov-report=
	$(BIN)/pytest --ds tests.auth_user_project.settings tests/auth_user_project \
		--cov --cov-append --cov-report=term --cov-fail-under=95

# Fault injection (tests/faults, marker `faults`; not part of `test`): a crash, killed
# backends and lost COMMITs against a throwaway PostgreSQL cluster the tests start (as
# the `postgres` OS user when run as root; binaries from FAULTS_PG_BIN, default
# /usr/lib/postgresql/15/bin) and remove. Prints its figures; see docs/reliability.md.
test-faults: $(STAMP)
	FAULTS_REQUIRED=1 $(BIN)/pytest -m faults tests/faults -s

# Read replicas (tests/scaling, marker `scaling`; not part of `test`): a throwaway primary
# and a `pg_basebackup -R` streaming replica of it (tests/faults/cluster.py's servers),
# routed to; prints its figures; see docs/scaling.md.
test-scaling: $(STAMP)
	SCALING_REQUIRED=1 $(BIN)/pytest -m scaling tests/scaling

# End-to-end tests of the admin in headless Chromium (tests/browser, marker `browser`; not
# part of `test`): Debian's `chromium` package (`apt-get install chromium`; CHROMIUM=path
# for another binary) driven by Playwright. Screenshots of failures go to .test-output/.
test-browser: $(STAMP)
	BROWSER_REQUIRED=1 $(BIN)/pytest -m browser tests/browser

# squawk, the migration SQL linter, pinned by package-lock.json (Node 20+ and npm).
NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# The last step lints every migration's SQL (sqlmigrate, both directions) with squawk;
# sqlmigrate needs the database (DATABASE_URL, or the embedded PostgreSQL).
lint: $(STAMP) $(NODE_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=1 $(BIN)/mypy .
	$(BIN)/lint-imports
	DEBUG=$${DEBUG:-1} $(BIN)/python scripts/squawk_migrations.py

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py bench --scale $(SCALE)

schema-doc: $(STAMP)
	DEBUG=$${DEBUG:-1} $(BIN)/python manage.py schema_doc

# Mutation testing (scripts/mutation.py; not part of `test` or CI: minutes): mutmut mutates
# each module of the generic core (pagination, filters, error_mapping, transactions) and
# runs only that module's own test file against each mutant, one at a time, in a temporary
# copy of the tree (pyproject.toml's [tool.mutmut] narrowed to the module) with a test
# database of its own (<TEST_DATABASE_NAME or test_mutation>_<module>, dropped after). It
# prints mutants, killed, survived and score per module and lists the mutants not killed,
# and fails when a module scores under 90 %. MODULES="pagination filters" runs a subset;
# KEEP_MUTANTS=1 keeps the copies for `mutmut show <name>` there (the path is printed).
.PHONY: mutation
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py $(MODULES) $(if $(KEEP_MUTANTS),--keep)
