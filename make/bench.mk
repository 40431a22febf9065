# Usage: make bench | make bench-smoke   (benchmark targets; the Makefile includes this file)
#
# bench        the full benchmark (about 13 minutes on 2 cores): each observability job's cost,
#              its floor and the goal ratios; writes bench/results/bench.json + bench.png
# bench-smoke  a very short run for CI (about a minute), results in BENCH_SMOKE_OUT; figures not judged
# bench-memory RSS per worker after 1 and 5 minutes at half capacity (~6 min per variant):
#              bench/results/memory.json; BENCH_MEMORY_ARGS, e.g. "--variants bare,full"
# BENCH_ARGS   extra arguments for `python -m bench`, e.g. BENCH_ARGS="--rounds 3"

.PHONY: bench bench-smoke bench-deps bench-memory

BENCH_STAMP := $(VENV)/.bench-installed-$(shell cksum < bench/requirements.txt | cut -d' ' -f1)
BENCH_SMOKE_OUT ?= $(or $(TMPDIR),/tmp)/fastapi-app-bench-smoke

$(BENCH_STAMP): bench/requirements.txt | venv
	$(BIN)/pip install --no-cache-dir --disable-pip-version-check -q \
		-c $(RUNTIME_CONSTRAINTS) -r bench/requirements.txt
	rm -f $(VENV)/.bench-installed-* && touch $@

bench-deps: $(BENCH_STAMP) ## install the bench-only packages (contrib instrumentation, matplotlib) into .venv

bench: venv $(BENCH_STAMP) ## the cost of each observability job vs bare, its floor, the goals (~13 min)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-smoke: venv $(BENCH_STAMP) ## a very short benchmark run, as CI's smoke test (figures not judged)
	$(BIN)/python -m bench --smoke --out $(BENCH_SMOKE_OUT) $(BENCH_ARGS)

bench-memory: venv $(BENCH_STAMP) ## memory growth: RSS per worker after 1 and 5 min at half capacity (~6 min)
	$(BIN)/python -m bench.memory $(BENCH_MEMORY_ARGS)
