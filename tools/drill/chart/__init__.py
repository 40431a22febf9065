"""`make drill-chart`: the chart's own pod spec and rollout on Docker, under load.

kind cannot run everywhere, Docker can. `helm template` renders the chart (production
values plus values-drill.yaml), and the rendered objects are the only source of the pods'
settings: each replica is a `docker run` of the pod spec (spec.py), probed and stopped the
way the kubelet does (pods.py), rolled the way the Deployment controller does with the
strategy's maxSurge, maxUnavailable and minReadySeconds, behind HAProxy that follows
readiness as an EndpointSlice would, a configurable lag later (drill.py). The load, the
report and the timeline picture are tools/drill's. `python -m tools.drill.chart --help`.
"""
