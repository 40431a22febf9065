# Helm chart targets (included by the Makefile). helm, helm4 and checkov live in .tools/bin.
CHART := deploy/helm/fastapi-app
TOOLS_BIN := .tools/bin
HELM := $(TOOLS_BIN)/helm
KUBE_VERSION ?= 1.34.0

.PHONY: tools chart-lint chart-template chart-docs chart-checkov chart-test

tools: $(HELM) $(TOOLS_BIN)/helm4 $(TOOLS_BIN)/checkov ## install helm v3, helm v4 (helm4) and checkov under .tools/

$(HELM) $(TOOLS_BIN)/helm4: tools/install-helm.sh
	bash tools/install-helm.sh $(TOOLS_BIN)
	touch $(HELM) $(TOOLS_BIN)/helm4

$(TOOLS_BIN)/checkov: tools/install-checkov.sh
	bash tools/install-checkov.sh
	touch $(TOOLS_BIN)/checkov

chart-lint: $(HELM) ## helm lint --strict with every ci/*.yaml values file
	@for f in $(CHART)/ci/*.yaml; do \
		echo "--- helm lint $$f"; \
		$(HELM) lint --strict $(CHART) -f $$f --kube-version $(KUBE_VERSION) || exit 1; \
	done

chart-template: $(HELM) ## render the chart (VALUES=file, KUBE_VERSION=1.34.0)
	$(HELM) template fastapi-app $(CHART) --kube-version $(KUBE_VERSION) $(if $(VALUES),-f $(VALUES))

# bitnami's readme-generator-for-helm, pinned in package.json/package-lock.json (npm ci).
README_GENERATOR := node_modules/.bin/readme-generator

$(README_GENERATOR): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

chart-docs: $(README_GENERATOR) ## regenerate the Parameters tables of the chart README from values.yaml
	$(README_GENERATOR) --values $(CHART)/values.yaml --readme $(CHART)/README.md

# The checks skipped on purpose, with their reasons: deploy/checkov.yaml.
CHECKOV_CONFIG := deploy/checkov.yaml

chart-checkov: $(HELM) $(TOOLS_BIN)/checkov ## checkov on the chart with the default and production values
	PATH="$(CURDIR)/$(TOOLS_BIN):$$PATH" $(TOOLS_BIN)/checkov -d $(CHART) --framework helm --skip-download --compact --quiet \
		--config-file $(CHECKOV_CONFIG)
	PATH="$(CURDIR)/$(TOOLS_BIN):$$PATH" $(TOOLS_BIN)/checkov -d $(CHART) --framework helm --skip-download --compact --quiet \
		--config-file $(CHECKOV_CONFIG) --var-file $(CHART)/ci/production-values.yaml

chart-test: venv tools ## the chart tests (pytest -m chart)
	$(BIN)/pytest -m chart
