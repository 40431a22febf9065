# Usage: make release-version VERSION=x.y.z | make release-dry-run | make sbom   (included by the Makefile)
# A release is a `vX.Y.Z` tag on main; .github/workflows/release.yml then builds, signs and
# publishes the image and the chart (CONTRIBUTING.md, "Cutting a release").
DIST ?= dist
CHART_VERSION = $(shell sed -n 's/^version: //p' $(CHART)/Chart.yaml)
DRY_RUN_IMAGE ?= fastapi-app:release-dry-run

.PHONY: release-version release-check release-tools sbom release-dry-run

# The release job's Python tools (it can publish and sign): tools/requirements-release.txt,
# every file hash-pinned (make requirements), installed with --require-hashes into a venv of
# their own, never the dev venv's unhashed tools.
RELEASE_VENV ?= .tools/release-venv
RELEASE_STAMP := $(RELEASE_VENV)/.installed-$(shell cksum < tools/requirements-release.txt | cut -d' ' -f1)

$(RELEASE_STAMP): tools/requirements-release.txt
	rm -rf $(RELEASE_VENV) && $(PYTHON) -m venv $(RELEASE_VENV)
	$(RELEASE_VENV)/bin/pip install --no-cache-dir --disable-pip-version-check -q \
		--require-hashes -r tools/requirements-release.txt
	touch $@

release-tools: $(RELEASE_STAMP) ## the release job's hash-checked tools (CycloneDX), in $(RELEASE_VENV)

release-version: venv $(HELM) ## set VERSION everywhere (project, chart, image label, kustomize, CHANGELOG)
	@test -n "$(VERSION)" || { echo "usage: make release-version VERSION=x.y.z"; exit 2; }
	$(BIN)/python -m tools.release set $(VERSION)
	$(MAKE) --no-print-directory kustomize-base
	$(BIN)/python -m tools.release check

release-check: ## fail if the version differs anywhere from pyproject.toml's (standard library only)
	$(PYTHON) -m tools.release check

sbom: $(RELEASE_STAMP) ## CycloneDX SBOM of the pinned Python dependencies: $(DIST)/sbom.cdx.json
	mkdir -p $(DIST)
	$(RELEASE_VENV)/bin/cyclonedx-py requirements requirements.txt --pyproject pyproject.toml \
		--of JSON --output-reproducible -o $(DIST)/sbom.cdx.json

release-dry-run: venv $(HELM) release-check sbom ## what the release workflow does, without pushing or signing
	$(MAKE) --no-print-directory image IMAGE=$(DRY_RUN_IMAGE)
	$(BIN)/python -m tools.release_dry_run --image $(DRY_RUN_IMAGE) --helm $(HELM) --dist $(DIST) --docker "$(DOCKER)"
