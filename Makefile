# retool-operator: every task is one command. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LOCAL := .local
LOCAL_KUBECONFIG := $(LOCAL)/kubeconfig
PGDATA_DIR := $(LOCAL)/postgres
# pytest-xdist workers for the end-to-end suite: each test gets its own namespace and operator.
# Temporary files (PostgreSQL data among them) stay in this checkout's .local/, so that another
# pytest run on the machine (another clone) cannot rotate them away mid-run.
E2E_WORKERS ?= 4
PYTEST_ARGS ?=

# `make run KUBECONFIG=...` on the command line means "use that cluster, skip the local one".
ifeq ($(origin KUBECONFIG),command line)
RUN_KUBECONFIG := $(KUBECONFIG)
else
RUN_KUBECONFIG := $(abspath $(LOCAL_KUBECONFIG))
endif

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-14s %s\n", $$1, $$2}'

# Dependencies come from the lock (exact versions, hashes checked); the project itself is
# installed on top without resolving anything. `make lock` updates the lock from pyproject.toml.
LOCK_DEV := requirements/dev.lock
LOCK_RUNTIME := requirements/runtime.lock
UV_COMPILE = $(BIN)/uv pip compile pyproject.toml requirements/build.in --universal \
	--python-version 3.11 --generate-hashes --quiet

$(BIN)/.installed: pyproject.toml $(LOCK_DEV)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK_DEV)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	$(BIN)/python -m pip check
	touch $@

.PHONY: venv
venv: $(BIN)/.installed ## Create the virtualenv from the lock and install the project with its dev tools

.PHONY: lock
lock: venv ## Re-resolve requirements/*.lock from pyproject.toml (newest allowed versions, with hashes)
	$(UV_COMPILE) --upgrade -o $(LOCK_RUNTIME)
	$(UV_COMPILE) --upgrade --extra dev -o $(LOCK_DEV)

.PHONY: binaries
binaries: ## Build (once, cached outside the repo) the control-plane binaries from the Go module proxy
	bash hack/build-binaries.sh all

.PHONY: tools
tools: ## Build (once, cached) helm, kube-score, and the kstatus and Argo CD Lua runners (hack/tools/)
	bash hack/build-binaries.sh tools

.PHONY: cluster-up
cluster-up: ## Start the local control plane (kube-apiserver, etcd, ... run by kwokctl); idempotent
	bash hack/cluster.sh up

.PHONY: cluster-down
cluster-down: ## Stop and delete the local control plane
	bash hack/cluster.sh down

.PHONY: postgres-up
postgres-up: venv ## Start a local PostgreSQL server for `make run` (data in .local/postgres)
	$(BIN)/python -m tests.support.pgserver up $(PGDATA_DIR) > $(LOCAL)/postgres.env
	@cat $(LOCAL)/postgres.env

.PHONY: postgres-down
postgres-down: venv ## Stop the local PostgreSQL server
	$(BIN)/python -m tests.support.pgserver down $(PGDATA_DIR)

.PHONY: crds
crds: venv ## Regenerate crds/ (and the chart's copy) from the models
	$(BIN)/retool-operator crds > crds/retooldeployments.yaml
	cp crds/retooldeployments.yaml charts/retool-operator/crds/retooldeployments.yaml

.PHONY: kubernetes-schemas
kubernetes-schemas: venv ## Regenerate the embedded pod types' schemas from the Kubernetes release's OpenAPI
	source hack/versions.sh && $(BIN)/python -m hack.kubernetes_schemas --version "$$K8S_VERSION" \
		> operator/retool_operator/core/kubernetes_schemas.json

.PHONY: docs
docs: venv ## Regenerate docs/crd-reference.md from the models
	$(BIN)/python -m retool_operator.core.reference > docs/crd-reference.md

.PHONY: lint
lint: venv tools binaries ## ruff, formatting, mypy --strict, import-linter contracts, hadolint, helm lint, kube-score
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile
	bash hack/lint-manifests.sh

.PHONY: unit
unit: venv tools ## Unit tests (no cluster; the Argo CD check runs in gopher-lua, the chart in helm)
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

.PHONY: e2e
e2e: venv tools cluster-up ## End-to-end tests against the local control plane and a real PostgreSQL
	$(BIN)/pytest tests/e2e -q -n $(E2E_WORKERS) --basetemp=$(LOCAL)/pytest-e2e $(PYTEST_ARGS)

.PHONY: faults
faults: venv binaries ## Fault-injection scenarios proven reliable, serially, on their own local control plane (tests/faults)
	$(BIN)/pytest tests/faults -q -n 0 -m "not unproven" --basetemp=$(LOCAL)/pytest-faults $(PYTEST_ARGS)

.PHONY: faults-all
faults-all: venv binaries ## Every fault scenario, the unproven ones too (not part of `make test`)
	$(BIN)/pytest tests/faults -q -n 0 --basetemp=$(LOCAL)/pytest-faults $(PYTEST_ARGS)

.PHONY: faults-down
faults-down: ## Delete the fault suite's own control plane
	CLUSTER_NAME=retool-faults-$$(printf '%s' "$(CURDIR)" | sha256sum | cut -c1-8) \
	  CLUSTER_KUBECONFIG=$(LOCAL)/faults-kubeconfig bash hack/cluster.sh down

.PHONY: test
test: lint unit e2e faults ## The whole suite: lint, types, unit, end-to-end and fault-injection tests

.PHONY: bench
bench: venv binaries ## Benchmarks against Kubernetes' own controllers (own cluster; BENCH_ARGS=--quick)
	$(BIN)/python -m bench.run $(BENCH_ARGS)

.PHONY: run
run: venv ## Run the operator in the foreground against the local control plane (or KUBECONFIG=...)
ifneq ($(origin KUBECONFIG),command line)
	$(MAKE) cluster-up postgres-up
endif
	KUBECONFIG=$(RUN_KUBECONFIG) bash hack/run.sh

.PHONY: clean
clean: ## Remove the virtualenv and local state (the binary cache outside the repo stays)
	-bash hack/cluster.sh down
	-$(BIN)/python -m tests.support.pgserver down $(PGDATA_DIR)
	rm -rf $(VENV) $(LOCAL) .pytest_cache .mypy_cache .ruff_cache
