# Usage: make release-version VERSION=x.y.z | make release-dry-run | make sbom   (included by the Makefile)
# A release is a `vX.Y.Z` tag on main; .github/workflows/release.yml then builds, signs and
# publishes the image and the chart (CONTRIBUTING.md, "Cutting a release").
DIST ?= dist
CHART_VERSION = $(shell sed -n 's/^version: //p' $(CHART)/Chart.yaml)
DRY_RUN_IMAGE ?= fastapi-app:release-dry-run

.PHONY: release-version release-check sbom release-dry-run

release-version: venv $(HELM) ## set VERSION everywhere (project, chart, image label, kustomize, CHANGELOG)
	@test -n "$(VERSION)" || { echo "usage: make release-version VERSION=x.y.z"; exit 2; }
	$(BIN)/python -m tools.release set $(VERSION)
	$(MAKE) --no-print-directory kustomize-base
	$(BIN)/python -m tools.release check

release-check: venv ## fail if the version differs anywhere from pyproject.toml's
	$(BIN)/python -m tools.release check

sbom: venv ## CycloneDX SBOM of the pinned Python dependencies: $(DIST)/sbom.cdx.json
	mkdir -p $(DIST)
	$(BIN)/cyclonedx-py requirements requirements.txt --pyproject pyproject.toml \
		--of JSON --output-reproducible -o $(DIST)/sbom.cdx.json

release-dry-run: venv $(HELM) release-check sbom ## what the release workflow does, without pushing or signing
	$(MAKE) --no-print-directory image IMAGE=$(DRY_RUN_IMAGE)
	$(BIN)/python -m tools.release_dry_run --image $(DRY_RUN_IMAGE) --helm $(HELM) --dist $(DIST) --docker "$(DOCKER)"
