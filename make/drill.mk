# Usage: make drill | make drill-control   (included by the Makefile; see tools/drill/__init__.py)
# Rolling-update drill: 3 replicas of the real Gunicorn command behind HAProxy, replaced one
# by one the Kubernetes way under constant load. Needs haproxy (Debian: apt-get install haproxy).
# Tune with e.g. `make drill DRILL_SECONDS=120 DRILL_RATE=300 DRILL_ARGS="--proxy-mode tcp"`.
DRILL_SECONDS ?= 60
DRILL_RATE ?= 200
DRILL_ARGS ?=
DRILL := $(BIN)/python -m tools.drill local --duration $(DRILL_SECONDS) --rate $(DRILL_RATE)

.PHONY: drill drill-control

drill: venv ## rolling-update drill behind HAProxy: fails on any failed request
	$(DRILL) $(DRILL_ARGS)

drill-control: venv ## the drill with the protections off: passes only if requests fail
	$(DRILL) --control $(DRILL_ARGS)
