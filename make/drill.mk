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
