# The two commands a newcomer runs:  make run   and   make test
# Both create the virtual environment on first use.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test check protos lint-protos typecheck lint k8s-check clean

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

## check: contracts lint clean, generated code identical to what the generator makes,
## mypy --strict and ruff clean (pyproject.toml holds their settings)
check: $(STAMP) lint-protos typecheck lint
	PYTHON=$(PY) scripts/gen_protos.sh
	git diff --exit-code -- protos || (echo "generated code differs from protos/: run 'make protos' and commit" >&2; exit 1)
	test -z "$$(git status --porcelain --untracked-files=all -- protos)" || (git status --short -- protos; echo "untracked generated files" >&2; exit 1)

## protos: regenerate the Python code beside every .proto
protos: $(STAMP)
	PYTHON=$(PY) scripts/gen_protos.sh

lint-protos: $(STAMP)
	cd protos && ../$(VENV)/bin/buf lint

## typecheck: mypy --strict over the runtime, the libraries, the command line and the services
typecheck: $(STAMP)
	$(VENV)/bin/mypy src/creditscore consent_service ingest_service feature_service scoring_service gateway

## lint: ruff over everything but generated code
lint: $(STAMP)
	$(VENV)/bin/ruff check .

# kubectl from PATH, else the one .ci/run installs into the venv where PATH has none.
KUBECTL      ?= $(shell command -v kubectl 2>/dev/null || echo $(VENV)/bin/kubectl)
K8S_VARIANTS := base overlays/dev overlays/production
# The oldest Kubernetes the manifests are written for (native preStop sleep: 1.30)
# and the newest whose schemas kubernetes-validate ships.
K8S_VERSIONS := 1.30.0 1.37.0

## k8s-check: render every kustomize variant, validate it offline (strict schemas), lint the Dockerfile
k8s-check: $(STAMP)
	@mkdir -p var/k8s
	@set -e; for variant in $(K8S_VARIANTS); do \
	  out=var/k8s/$$(echo $$variant | tr / -).yaml; \
	  $(KUBECTL) kustomize k8s/$$variant > $$out; \
	  for version in $(K8S_VERSIONS); do \
	    $(VENV)/bin/kubernetes-validate --strict --quiet -k $$version $$out; \
	  done; \
	  echo "k8s/$$variant: $$(grep -c '^kind:' $$out) objects valid for Kubernetes $(K8S_VERSIONS) ($$out)"; \
	done
	$(VENV)/bin/hadolint Dockerfile
	@echo "Dockerfile: hadolint clean"

clean:
	rm -rf var .pytest_cache
