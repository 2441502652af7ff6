# mesh-playground: `make deploy` rolls the apps out to the local cluster, `make test` checks everything.
# `make help` lists the targets.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)

# ---------------------------------------------------------------- environment
$(VENV)/.installed: requirements-dev.txt apps/proxy/requirements.txt apps/webserver/requirements.txt \
		apps/view/requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed, found " + sys.version.split()[0]'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo ">> installing pinned Python packages into $(VENV)"
	@$(BIN)/pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

# The repository is the collection mesh_playground.playground: linked where ansible.cfg's
# collections_path finds it, so playbooks and Molecule use the FQCNs users use.
COLLECTION_LINK := .collections/ansible_collections/mesh_playground/playground
$(COLLECTION_LINK):
	@mkdir -p $(dir $@) && ln -sfn ../../.. $@

.PHONY: venv
venv: $(VENV)/.installed $(COLLECTION_LINK) ## Create/update the local virtualenv (.venv) from the pinned requirements

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

# ---------------------------------------------------------------- apps (local, no cluster)
.PHONY: serve
serve: venv ## Serve webserver (:3031) and proxy (:3030 -> webserver) locally on loopback
	@bash apps/serve-local.sh

# The mesh's traffic per destination workload and version (apps/view/meshstat.py, like
# `linkerd viz stat`), over WINDOW, in namespace NS, from the local cluster's Prometheus (its
# NodePort, cluster/node-real/url.sh) or the one PROMETHEUS_URL names.
.PHONY: stat
NS ?= mesh-playground
WINDOW ?= 1m
stat: ## Traffic per workload and version from Prometheus: RPS, success %, p50/p99, requests (NS, WINDOW, PROMETHEUS_URL)
	@url="$${PROMETHEUS_URL:-$$(cluster/node-real/url.sh --prometheus)}" && \
		python3 apps/view/meshstat.py --prometheus "$$url" --namespace "$(NS)" --window "$(WINDOW)"

# ---------------------------------------------------------------- quality gates
.PHONY: lint lint-shell
lint: venv lint-shell ## ruff, vulture (unused code), yamllint, ansible-lint, and lint-shell
	ruff check .
	ruff format --check .
	vulture
	yamllint --strict .
	ansible-lint --offline

# Every *.sh of the repository (tracked or new, not ignored): shellcheck (settings in
# .shellcheckrc) and shfmt's format (settings in .editorconfig).
# Both come from Debian (installed on first use as root, else the command to run is printed).
lint-shell: ## shellcheck and shfmt on every shell script
	@cluster/node-real/install-packages.sh shellcheck shfmt
	shellcheck $$(git ls-files --cached --others --exclude-standard '*.sh')
	shfmt --diff $$(git ls-files --cached --others --exclude-standard '*.sh')

.PHONY: test-apps test-unit
test-apps: venv ## Tests of the apps over real sockets (no cluster needed)
	pytest tests/apps

test-unit: venv ## Unit tests of the collection's pure helpers (plugins/filter)
	pytest tests/unit

# The generated parts of the docs (docs/variables.md, each role README's variable table,
# docs/policy-sets.md's table, the choices of mesh_policies_sets) from their one source: the
# roles' meta/argument_specs.yml and defaults/main.yml, playbooks/meta/argument_specs.yml and
# POLICY_SETS (plugins/filter/mesh_policies.py). tests/unit/test_docs.py fails when they are stale.
.PHONY: docs
docs: venv ## Regenerate the variable docs, role README tables and policy-set table (docs/generate.py)
	python docs/generate.py

.PHONY: test test-live
# A playground already running (`make deploy`) is left as it is: the cluster's own tests run on a
# cluster of their own, the live suites in namespaces of their own, and a cluster that was running
# keeps running (cluster/with-cluster.sh stops only what it started).
test: venv ## Everything: lint, unit, apps, cluster, then on the real node with Istio: Molecule, collection, two clusters, end to end (starts and stops the local cluster)
	$(MAKE) lint
	$(MAKE) test-unit
	$(MAKE) test-apps
	$(MAKE) test-cluster
	cluster/with-cluster.sh $(MAKE) test-live

test-live: venv mesh-up ## On the real node with Istio: every Molecule scenario, then the collection, two clusters, end to end and Istio suites
	molecule test --all
	pytest -m "cluster or realnode" tests/ansible tests/e2e tests/mesh

# ---------------------------------------------------------------- local cluster (cluster/, docs/local-cluster.md)
# The kubectl matching the cluster; its admin kubeconfig is .cluster/kubeconfig (context mesh-playground).
# The cluster targets act on the default cluster, or on the one named by CLUSTER_NAME (see below).
KUBECTL := $(CURDIR)/.cluster/bin/kubectl

.PHONY: cluster-build cluster-up cluster-down cluster-status cluster-clean test-cluster
cluster-build: ## Build Kubernetes, etcd and KWOK from the Go module proxy into ~/.cache (reused when present)
	cluster/build.sh

.PHONY: cluster-binaries
cluster-binaries: # what `cluster/cluster.sh up` builds first
	@cluster/build.sh kubernetes etcd

cluster-up: venv ## Start the local cluster (idempotent; builds first if needed); CLUSTER_NODE_MODE=kwok|real
	cluster/cluster.sh up

cluster-down: ## Stop every process of the local cluster (state in .cluster/ is kept)
	cluster/cluster.sh down

cluster-status: ## What runs (and, for a dead component, where its log is)
	cluster/cluster.sh status

cluster-clean: ## Stop the local cluster and delete .cluster/ (PKI, etcd data, logs)
	cluster/cluster.sh clean

# They stop and restart the cluster under test: an instance of their own (KWOK nodes, ports + 5000),
# never the playground. CLUSTER_NAME/CLUSTER_PORT_OFFSET given on the command line win.
TEST_CLUSTER_NAME ?= tests
TEST_CLUSTER_PORT_OFFSET ?= 5000
test-cluster: venv ## Tests of the local cluster against its real API, on a cluster of their own (.cluster-tests/, started and stopped)
	CLUSTER_NAME=$(TEST_CLUSTER_NAME) CLUSTER_PORT_OFFSET=$(TEST_CLUSTER_PORT_OFFSET) cluster/with-cluster.sh pytest -m cluster tests/cluster

# More clusters beside the first, from the same checkout: CLUSTER_NAME=<name> with any target above
# (e.g. make cluster-up CLUSTER_NAME=second), state in .cluster-<name>/, context
# mesh-playground-<name>, every port + 10000 (CLUSTER_PORT_OFFSET), KWOK nodes only.
# inventory/second deploys to the one named second.
.PHONY: cluster-up-second cluster-down-second cluster-status-second cluster-clean-second
cluster-up-second: venv ## Start the second local cluster (.cluster-second/, API on 127.0.0.1:16443, KWOK nodes)
	CLUSTER_NAME=second cluster/cluster.sh up

cluster-down-second: ## Stop the second local cluster (the first keeps running)
	CLUSTER_NAME=second cluster/cluster.sh down

cluster-status-second: ## What of the second local cluster runs
	CLUSTER_NAME=second cluster/cluster.sh status

cluster-clean-second: ## Stop the second local cluster and delete .cluster-second/
	CLUSTER_NAME=second cluster/cluster.sh clean

# ---------------------------------------------------------------- Ansible deploy (roles/, playbooks/, docs/variables.md)
.PHONY: deploy undeploy test-molecule mesh-up
# The mesh switch: MESH=false deploys the plain apps (it sets playground_mesh, the inventory's
# switch, for the run); unset, the inventory decides (on for inventory/local). KWOK nodes
# simulate pods, so there the mesh is always off.
MESH ?=
NODE_MODE = $$(cat .cluster/run/node-mode)
MESH_ARGS = $$([ "$(NODE_MODE)" = real ] || echo "-e playground_mesh=false") $(if $(MESH),-e playground_mesh=$(MESH))

# What deploy and mesh-up build or fetch before the cluster starts, side by side: a Go build is
# CPU-bound but leaves a core idle while it downloads modules and links, and pip and debootstrap
# mostly wait on the network; one after another they took minutes more on 2 cores
# (docs/benchmarks.md, "A cold make deploy"). Each step reuses its cache, so a warm run is seconds.
# No --output-sync: it would hold each build's progress lines until that build ends.
.PHONY: prebuild node-binaries mesh-binaries
PREBUILD_NODE_MODE = $(or $(CLUSTER_NODE_MODE),real)
prebuild:
	@$(MAKE) --no-print-directory -s -j3 venv \
		$(if $(filter real,$(PREBUILD_NODE_MODE)),node-binaries) cluster-binaries \
		$(if $(filter real,$(PREBUILD_NODE_MODE)),mesh-binaries)

node-binaries: # the real node's: Debian packages, image bases and app images (mostly downloads), CoreDNS, kube-router
	@images/base.sh >/dev/null && images/base.sh jre >/dev/null && images/pause.sh >/dev/null && \
		images/apps.sh >/dev/null && cluster/build.sh coredns kube-router

mesh-binaries: # Istio (without istioctl), Helm, Prometheus, Envoy, Zipkin
	@cluster/istio-build.sh helm istio prometheus envoy zipkin

mesh-up: ## The real node, its images (apps, Istio) built and imported, Istio installed (what deploy and the live tests need)
	@$(MAKE) --no-print-directory prebuild CLUSTER_NODE_MODE=real
	CLUSTER_NODE_MODE=real cluster/cluster.sh up
	images/build.sh
	ansible-playbook playbooks/istio.yml $(MESH_ARGS)

# The real node by default, so that the apps really answer; CLUSTER_NODE_MODE=kwok simulates pods.
deploy: ## Bring the local cluster up (real node, Istio) and deploy the apps and mesh policies; ends with an answer through the ingress gateway
	@$(MAKE) --no-print-directory prebuild
	CLUSTER_NODE_MODE=$${CLUSTER_NODE_MODE:-real} cluster/cluster.sh up
	@if [ "$(NODE_MODE)" = real ]; then images/build.sh && ansible-playbook playbooks/istio.yml $(MESH_ARGS); fi
	ansible-playbook playbooks/deploy.yml $(MESH_ARGS)
	@echo ">> what runs in namespace mesh-playground:"
	@$(KUBECTL) --kubeconfig .cluster/kubeconfig --context mesh-playground -n mesh-playground get deployments,pods,services -o wide
	@if [ "$(NODE_MODE)" = real ]; then echo ">> the apps answer at (make url):"; cluster/node-real/url.sh --answer; fi
	@if [ "$(NODE_MODE)" = real ]; then cluster/node-real/url.sh --observe 2>/dev/null | sed '1i >> see the mesh act (make observe-url; docs/observe.md):' || true; fi

undeploy: venv ## Remove the apps, their mesh policies and Istio from the local cluster, waiting until gone (the cluster keeps running)
	ansible-playbook playbooks/undeploy.yml $(MESH_ARGS)
	ansible-playbook playbooks/istio.yml -e istio_mesh_state=absent -e istio_mesh_uninstall_crds=true $(MESH_ARGS)

test-molecule: venv mesh-up ## Molecule: every scenario (molecule/*) against the local cluster, each in its own namespace
	molecule test --all

# ---------------------------------------------------------------- real pods (cluster/node-real/, images/, docs/local-cluster.md)
.PHONY: images url test-e2e
images: ## Build the base, sandbox and app images locally (cached) and import them into the real node
	images/build.sh

# A registry of the user's choice (docs/own-cluster.md): REGISTRY=host[:port]/path, after
# `buildah login host`; the local one (make registry-up) is one such registry, needing no login.
.PHONY: images-push registry-up registry-down
REGISTRY ?=
images-push: ## Push the app images of `make images` to REGISTRY=host[:port]/path (after buildah login), print them by digest
	@[ -n "$(REGISTRY)" ] || { echo "usage: make images-push REGISTRY=registry.example.com/team (log in first: buildah login registry.example.com)" >&2; exit 2; }
	images/registry.sh push "$(REGISTRY)"

registry-up: ## A registry on this machine to push to: 127.0.0.1:5443 (REGISTRY_PORT), TLS and a password, trusted by the real node
	images/registry.sh start

registry-down: ## Stop the local registry (its images, CA and credentials are kept; images/registry.sh clean removes them)
	images/registry.sh stop

url: ## Where the apps answer from this machine: the ingress gateway (mesh on), else the proxy Service (real node mode)
	@cluster/node-real/url.sh

.PHONY: step
STEP ?=
KEEP ?=
step: venv ## The series' examples one by one (docs/tour.md): list them; STEP=<name> applies one, measures it, compares with the post, puts the policies back (KEEP=1 leaves it; API=gateway-api its Gateway API twin)
	ansible-playbook playbooks/step.yml $(if $(STEP),-e step=$(STEP)) $(if $(KEEP),-e step_keep=true) $(if $(API),-e step_api=$(API))

.PHONY: observe-url
observe-url: ## Where the live view, Zipkin and Prometheus answer from this machine (docs/observe.md)
	@cluster/node-real/url.sh --observe

# Joins the real node to the cluster if it runs in kwok mode (as inside `make test`).
test-e2e: venv mesh-up ## End to end through real pods and sidecars: traffic, rolling update under load, pod loss, undeploy
	pytest -m realnode tests/e2e

# ---------------------------------------------------------------- mesh policies (Istio CRDs, roles/mesh_policies)
.PHONY: istio-crds
# The istio_mesh role's own base release (entry point crds, playbooks/istio_crds.yml): Istio's
# CRDs and nothing else, also run by cluster-up.
istio-crds: venv ## Install Istio's CRDs (base chart of ISTIO_VERSION, cluster/versions.env) into the running local cluster
	@cluster/istio-crds.sh

# ---------------------------------------------------------------- Istio from source (cluster/istio-build.sh, images/istio.sh, roles/istio_mesh)
.PHONY: istio-build istio test-istio
istio-build: ## Build Istio (istiod, pilot-agent, CNI), Helm 3, Prometheus and fetch Envoy, Zipkin into ~/.cache (reused when present; ~15 min cold)
	cluster/istio-build.sh

.PHONY: istioctl
istioctl: ## Build istioctl of the same Istio into ~/.cache (no deploy needs it; the tests' istioctl analyze builds it too)
	@cluster/istio-build.sh istioctl
	@echo ">> $$(cluster/istio-build.sh path istio)/bin/istioctl"

istio: mesh-up ## Install Istio on the local cluster's real node (images built and imported first): playbooks/istio.yml

test-istio: venv mesh-up ## Istio for real: injection under Pod Security restricted, traffic through Envoy, faults, ingress gateway
	pytest -m realnode tests/mesh

# ---------------------------------------------------------------- benchmarks
.PHONY: bench
bench: venv ## Benchmarks: prints tables (apps, cluster, deploy, real node, mesh)
	python bench/apps.py
	python bench/cluster.py
	python bench/deploy.py
	python bench/realnode.py
	python bench/mesh.py

.PHONY: bench-deploy
bench-deploy: venv ## Only the deploy benchmark: no-op deploy (with the mesh policies) against the Ansible floor and kubectl
	python bench/deploy.py

.PHONY: bench-apps
bench-apps: venv ## Only the apps benchmark: ours vs the seed's Node.js pair (needs wrk, node, npm)
	python bench/apps.py

# Faults under load (bench/faults.py): restarts istiod, the API server and etcd, and the node.
.PHONY: bench-faults
bench-faults: venv ## Faults at 50 requests/s through the gateway: istiod down, pods killed, API server and etcd, node restart (needs make deploy)
	python bench/faults.py

.PHONY: bench-mesh
bench-mesh: venv ## Only the mesh benchmark: proxy -> webserver with/without sidecars at a fixed rate (fortio; needs `make istio`)
	python bench/mesh.py
