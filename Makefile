# The two commands a newcomer runs:  make run   and   make test
# Both create the virtual environment on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test check protos lint-protos clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: start the whole suite on SQLite, load a simulated population, look scores up, serve until Ctrl-C
run: $(STAMP)
	$(VENV)/bin/creditscore run $(ARGS)

## test: the whole test suite (PostgreSQL-backed tests run where TEST_POSTGRES_URL is set)
test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

## check: contracts lint clean and generated code identical to what the generator makes
check: $(STAMP) lint-protos
	PYTHON=$(PY) scripts/gen_protos.sh
	git diff --exit-code -- protos || (echo "generated code differs from protos/: run 'make protos' and commit" >&2; exit 1)
	test -z "$$(git status --porcelain --untracked-files=all -- protos)" || (git status --short -- protos; echo "untracked generated files" >&2; exit 1)

## protos: regenerate the Python code beside every .proto
protos: $(STAMP)
	PYTHON=$(PY) scripts/gen_protos.sh

lint-protos: $(STAMP)
	cd protos && ../$(VENV)/bin/buf lint

clean:
	rm -rf var .pytest_cache
