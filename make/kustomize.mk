# Usage: make kustomize-build | make kustomize-base | make kustomize-test   (included by the Makefile)
# The kustomize base is generated from the Helm chart and committed (deploy/kustomize/README.md).
KUSTOMIZE_DIR := deploy/kustomize
KUSTOMIZE_OVERLAYS := $(sort $(wildcard $(KUSTOMIZE_DIR)/overlays/*))
KUSTOMIZE_HELM := .tools/bin/helm

.PHONY: kustomize-build kustomize-base kustomize-test

kustomize-build: venv ## print each kustomize overlay (kubectl kustomize), one YAML stream
	@for overlay in $(KUSTOMIZE_OVERLAYS); do \
		echo "# --- kubectl kustomize $$overlay"; \
		$(BIN)/kubectl kustomize $$overlay || exit 1; \
		echo "---"; \
	done

kustomize-base: venv $(KUSTOMIZE_HELM) ## regenerate deploy/kustomize/base from the chart (helm template)
	$(BIN)/python tools/kustomize_sync.py --helm $(KUSTOMIZE_HELM)

kustomize-test: venv $(KUSTOMIZE_HELM) ## the kustomize tests (drift, shutdown arithmetic, validate, checkov)
	$(BIN)/pytest -m chart tests/kustomize
