# modelpilot: the two commands are `make demo` and `make test`; both do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CLUSTER_DIR ?= .cluster
KUBECONFIG_LOCAL := $(abspath $(CLUSTER_DIR))/kubeconfig
E2E_WORKERS ?= 4
KUBECTL = $$($(PY) hack/testbed.py bin)/kubectl
# The local test bed lives in a network namespace of its own (docs/testbed.md): commands that talk
# to it run inside. With KUBECONFIG / MODELPILOT_E2E_KUBECONFIG pointing elsewhere, nothing is wrapped.
INSIDE = $(PY) hack/testbed.py --workdir $(CLUSTER_DIR) exec --
PYTEST_ARGS ?=

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,server]'
	@touch $@

.PHONY: venv
venv: $(VENV)/.installed ## create .venv and install modelpilot with its extras

.PHONY: binaries
binaries: ## build the pinned cluster binaries into ~/.cache/modelpilot (only what is missing)
	hack/build-testbed.sh all

.PHONY: cluster-up
cluster-up: venv binaries ## start the local cluster (kubeconfig: .cluster/kubeconfig); harmless when up
	$(PY) hack/testbed.py up --workdir $(CLUSTER_DIR)
	@$(PY) hack/testbed.py nodes --workdir $(CLUSTER_DIR)

.PHONY: shell
shell: cluster-up ## a shell inside the test bed's network namespace (KUBECONFIG set; kubectl on PATH)
	@PATH="$$($(PY) hack/testbed.py bin):$$PATH" $(INSIDE) bash

.PHONY: add-nodes
add-nodes: cluster-up ## add N more CPU nodes of 250 pods each: make add-nodes N=4
	$(PY) hack/testbed.py add-nodes --workdir $(CLUSTER_DIR) --count $(or $(N),1)

.PHONY: cluster-down
cluster-down: ## stop every cluster process and remove .cluster/
	@if [ -x $(PY) ]; then $(PY) hack/testbed.py down --workdir $(CLUSTER_DIR); else rm -rf $(CLUSTER_DIR); fi

.PHONY: lint
lint: venv ## ruff
	$(VENV)/bin/ruff check .

.PHONY: crds
crds: venv ## regenerate crds/, the chart's CRD copies and docs/api.md from the pydantic models
	$(PY) -m modelpilot.api.crd
	$(PY) -m modelpilot.api.docs
	$(PY) -m modelpilot.api.crd --output charts/modelpilot/crds

.PHONY: check-crds
check-crds: venv ## fail when a committed CRD, its chart copy or docs/api.md is stale
	$(PY) -m modelpilot.api.crd --check
	$(PY) -m modelpilot.api.docs --check
	$(PY) -m modelpilot.api.crd --check charts/modelpilot/crds

.PHONY: proto
proto: venv ## regenerate the runtime's gRPC code (operator/modelpilot/server/proto/*_pb2*.py) from its .proto
	$(PY) -m hack.proto

.PHONY: check-proto
check-proto: venv ## fail when the committed gRPC code does not match operator/modelpilot/server/proto/*.proto
	$(PY) -m hack.proto --check

.PHONY: run
run: ## run the operator in the foreground (local cluster, or $$KUBECONFIG when set)
	@if [ -n "$$KUBECONFIG" ]; then wrap=""; else $(MAKE) --no-print-directory cluster-up; wrap="$(INSIDE)"; fi; \
	  export KUBECONFIG=$${KUBECONFIG:-$(KUBECONFIG_LOCAL)}; \
	  $$wrap $(KUBECTL) apply --server-side --force-conflicts -f crds/ && \
	  $$wrap $(KUBECTL) wait --for=condition=Established --timeout=60s crd/modeldeployments.modelpilot.io \
	    crd/batchpredictions.modelpilot.io && \
	  exec $$wrap $(VENV)/bin/modelpilot operator $(OPERATOR_ARGS)

.PHONY: unit
unit: venv ## pure unit tests
	$(VENV)/bin/pytest tests/unit -q $(PYTEST_ARGS)

.PHONY: browser
browser: ## Debian's Chromium and chromedriver for the dashboard's browser test (installed only when missing)
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

.PHONY: e2e
e2e: cluster-up browser ## e2e tests against the local cluster (or MODELPILOT_E2E_KUBECONFIG)
	@if [ -n "$$MODELPILOT_E2E_KUBECONFIG" ]; then wrap=""; else wrap="$(INSIDE)"; fi; \
	  $$wrap $(VENV)/bin/pytest tests/e2e -q -n $(E2E_WORKERS) --dist loadgroup -m "not alone" $(PYTEST_ARGS) && \
	  $$wrap $(VENV)/bin/pytest tests/e2e -q -m alone $(PYTEST_ARGS)

.PHONY: test
test: venv binaries lint check-crds check-proto unit server-test e2e ## everything: set-up, lint, unit and e2e tests

.PHONY: demo
demo: cluster-up ## a canary demo: v1 serving, v2 rolled back, v3 promoted (stays up: make cluster-down)
	$(INSIDE) $(PY) -m hack.demo

.PHONY: server-test
server-test: venv ## model-server runtime tests (real processes on loopback; builds MinIO once, ~4 min cold)
	$(VENV)/bin/pytest tests/server -q $(PYTEST_ARGS)

.PHONY: bench-server
bench-server: venv ## the runtime vs MLServer on the same model, driven by wrk (prints a table, ~3 min)
	@command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk"; exit 2; }
	$(PY) -m bench.server.run $(BENCH_ARGS)

.PHONY: bench-operator
bench-operator: cluster-up ## the operator at scale on the test bed: latency, RSS, API requests (BENCH_ARGS="--counts 100")
	$(INSIDE) $(PY) -m bench.operator.run $(BENCH_ARGS)

.PHONY: bench-serverless
bench-serverless: cluster-up ## scale to zero: first-request latency over 10 activations through gateway and KEDA (a table)
	$(INSIDE) env MODELPILOT_BENCH_ACTIVATIONS=$(or $(N),10) $(VENV)/bin/pytest tests/e2e/test_serverless.py -q -s -k cold_starts

.PHONY: bench-batch
bench-batch: venv ## batch prediction: rows/s per shard and overall for 1M rows vs raw predict() (prints a table)
	$(PY) -m bench.batch.run $(BENCH_ARGS)
