# Usage: make drill | make drill-control   (included by the Makefile; see tools/drill/__init__.py)
# Rolling-update drill: 3 replicas of the real Gunicorn command behind HAProxy, replaced one
# by one the Kubernetes way under constant load. Needs haproxy (Debian: apt-get install haproxy).
# Tune with e.g. `make drill DRILL_SECONDS=120 DRILL_RATE=300 DRILL_ARGS="--proxy-mode tcp"`.
# Each target writes its JSON report and its timeline picture (tools/drill/timeline_png.py,
# matplotlib from bench/requirements.txt) into DRILL_OUT: drill.json + drill.png, ...
DRILL_SECONDS ?= 60
DRILL_RATE ?= 200
DRILL_ARGS ?=
DRILL_OUT ?= var/drill
DRILL := $(BIN)/python -m tools.drill local --duration $(DRILL_SECONDS) --rate $(DRILL_RATE)

.PHONY: drill drill-control

drill: venv $(BENCH_STAMP) ## rolling-update drill behind HAProxy: fails on any failed request
	@mkdir -p $(DRILL_OUT)
	$(DRILL) --json $(DRILL_OUT)/drill.json $(DRILL_ARGS)

drill-control: venv $(BENCH_STAMP) ## the drill with the protections off: passes only if requests fail
	@mkdir -p $(DRILL_OUT)
	$(DRILL) --control --json $(DRILL_OUT)/drill-control.json $(DRILL_ARGS)

# The same drill across a schema change, on a throwaway PostgreSQL: the previous release (its
# code from git history, tools/drill/migration.py: PREVIOUS_RELEASE) serves, the expand
# migration runs beside the load as the Helm hook would, the current code replaces it, then
# the previous release replaces the current code again (rollback). Needs postgresql too.
MIGRATION_DRILL := $(BIN)/python -m tools.drill.migration

.PHONY: drill-migration drill-migration-control

drill-migration: venv ## rolling update across an expand migration and back: fails on any failed request
	@mkdir -p $(DRILL_OUT)
	$(MIGRATION_DRILL) --json $(DRILL_OUT)/drill-migration.json $(DRILL_ARGS)

drill-migration-control: venv ## the same with a breaking migration (a rename): passes only if requests fail
	@mkdir -p $(DRILL_OUT)
	$(MIGRATION_DRILL) --control --json $(DRILL_OUT)/drill-migration-control.json $(DRILL_ARGS)

# make drill-chart | make drill-chart-control   (tools/drill/chart; needs docker, helm, haproxy)
# The chart's own pod spec and rollout on Docker: `helm template` with the production values
# (+ tools/drill/chart/values-drill.yaml), each pod a container of the image built as
# DRILL_CHART_IMAGE, replaced under load as the Deployment and the kubelet would.
# STANDINS=1 builds and runs on the local stand-in images. Report + picture in DRILL_OUT.
DRILL_CHART_IMAGE ?= fastapi-app:drill-chart
DRILL_CHART_RATE ?= 50
DRILL_CHART_ARGS ?=
DRILL_CHART = $(BIN)/python -m tools.drill.chart --image $(DRILL_CHART_IMAGE) --helm $(HELM) \
	--docker $(DOCKER) --rate $(DRILL_CHART_RATE) \
	--postgres-image $(or $(POSTGRES_IMAGE),postgres:16-bookworm) \
	--redis-image $(or $(REDIS_IMAGE),redis:7-bookworm)

.PHONY: drill-chart drill-chart-control drill-chart-image

drill-chart-image:
	$(MAKE) --no-print-directory image IMAGE=$(DRILL_CHART_IMAGE)

drill-chart: venv $(BENCH_STAMP) $(HELM) drill-chart-image ## the chart's rendered pods rolled on Docker under load: fails on any failed request
	@mkdir -p $(DRILL_OUT)
	$(DRILL_CHART) --json $(DRILL_OUT)/drill-chart.json $(DRILL_CHART_ARGS)

drill-chart-control: venv $(BENCH_STAMP) $(HELM) drill-chart-image ## drill-chart with preStop 0 and a longer endpoint lag: passes only if requests fail
	@mkdir -p $(DRILL_OUT)
	$(DRILL_CHART) --control --json $(DRILL_OUT)/drill-chart-control.json $(DRILL_CHART_ARGS)

# make drill-canary | make drill-canary-control   (tools/drill/canary.py; needs helm, haproxy,
# prometheus) The chart's Flagger analysis for real: primaries (APP_VERSION=primary) and a
# canary behind HAProxy, whose weight the analysis steps by the rendered Canary's stepWeight
# while a real Prometheus (1 s scrapes) answers the MetricTemplates' queries. Three releases:
# good (promoted), erroring and slow (rolled back). Shorten with e.g.
# DRILL_CANARY_ARGS="--step-weight 10 --max-weight 30 --threshold 2 --interval 4".
DRILL_CANARY_ARGS ?=
DRILL_CANARY = $(BIN)/python -m tools.drill.canary --helm $(HELM)

.PHONY: drill-canary drill-canary-control

drill-canary: venv $(BENCH_STAMP) $(HELM) ## canary analysis behind HAProxy + Prometheus: good promoted, erroring and slow rolled back
	@mkdir -p $(DRILL_OUT)
	$(DRILL_CANARY) --json $(DRILL_OUT)/drill-canary.json $(DRILL_CANARY_ARGS)

drill-canary-control: venv $(BENCH_STAMP) $(HELM) ## the erroring canary with the analysis off: passes only if it was promoted
	@mkdir -p $(DRILL_OUT)
	$(DRILL_CANARY) --control --json $(DRILL_OUT)/drill-canary-control.json $(DRILL_CANARY_ARGS)
