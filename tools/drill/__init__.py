"""Rolling-update drill: constant load, a rollout beside it, every failed request counted.

- `python -m tools.drill local`: N replicas of the real Gunicorn command behind HAProxy,
  each replaced the Kubernetes way (see `local`); `--control` switches the protections off.
- `python -m tools.drill load --url URL --rollout "CMD"`: the same load and report against any
  URL while a rollout command runs (the kind e2e suite: `kubectl rollout restart ...`).
- From Python: `load.run_drill(LoadConfig(...), beside)` where `beside(timeline)` is any
  coroutine (a rollout) that records its own events on the shared `results.Timeline`
  (e.g. when a pod left an EndpointSlice) and returns a list of problems.
"""
