"""The rendered chart as the only source of settings: a Deployment's pod spec, resolved.

`plan_from_documents` reads what `helm template` printed (a list of objects) and returns a
`PodPlan`: the app container's image, command and args, its environment with every
ConfigMap and Secret reference resolved, its user and groups, read-only root, emptyDir
volumes (as tmpfs), capabilities, CPU and memory limits, ports, startup and readiness
probes, preStop hook and terminationGracePeriodSeconds, and the Deployment's replicas and
rolling-update strategy. Anything it cannot reproduce with `docker run` raises
`Unsupported` naming the field, instead of being left out quietly.
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = Mapping[str, Any]
APP_CONTAINER = "app"
POD_NAME = "\x00pod-name\x00"  # env from fieldRef metadata.name: each replica's own name


class Unsupported(ValueError):
    """A part of the rendered pod spec this drill cannot reproduce faithfully."""


@dataclass(frozen=True)
class Probe:
    path: str
    port: int
    period_s: float = 10
    timeout_s: float = 1
    failure_threshold: int = 3
    success_threshold: int = 1
    initial_delay_s: float = 0


@dataclass(frozen=True)
class PreStop:
    sleep_s: float = 0.0  # the native sleep action
    exec_command: tuple[str, ...] = ()  # an exec hook, run in the container (docker exec)


@dataclass(frozen=True)
class PodPlan:
    deployment: str
    image: str
    command: tuple[str, ...] | None
    args: tuple[str, ...] | None
    env: dict[str, str]
    user: str | None  # "uid:gid" for docker run --user
    group_add: tuple[str, ...]
    read_only: bool
    tmpfs: tuple[tuple[str, int | None], ...]  # (mount path, size limit in bytes)
    cap_drop: tuple[str, ...]
    cap_add: tuple[str, ...]
    no_new_privileges: bool
    privileged: bool
    seccomp_unconfined: bool
    cpus: float | None
    memory_bytes: int | None
    ports: dict[str, int]  # containerPort by name ("" for unnamed)
    startup: Probe | None
    readiness: Probe | None
    prestop: PreStop
    termination_grace_s: float
    replicas: int
    max_surge: int
    max_unavailable: int
    min_ready_s: float
    notes: list[str] = field(default_factory=list)  # fields read but not reproduced

    def docker_run_args(
        self, name: str, network: str, env: Mapping[str, str] | None = None
    ) -> list[str]:
        """`docker run` arguments (after `run`) for one replica of this pod."""
        args = ["--detach", "--name", name, "--network", network, "--hostname", name]
        if self.user:
            args += ["--user", self.user]
        for group in self.group_add:
            args += ["--group-add", group]
        if self.read_only:
            args.append("--read-only")
        for path, size in self.tmpfs:
            args += ["--tmpfs", f"{path}:rw,nosuid,nodev{f',size={size}' if size else ''}"]
        for cap in self.cap_drop:
            args += ["--cap-drop", cap]
        for cap in self.cap_add:
            args += ["--cap-add", cap]
        if self.no_new_privileges:
            args += ["--security-opt", "no-new-privileges"]
        if self.seccomp_unconfined:
            args += ["--security-opt", "seccomp=unconfined"]
        if self.privileged:
            args.append("--privileged")
        if self.cpus:
            args += ["--cpus", f"{self.cpus:g}"]
        if self.memory_bytes:
            args += ["--memory", str(self.memory_bytes)]
        for key, value in {**self.env, **(env or {})}.items():
            args += ["--env", f"{key}={value.replace(POD_NAME, name)}"]
        rest: list[str] = []
        if self.command is not None:
            args += ["--entrypoint", self.command[0]]
            rest = [*self.command[1:], *(self.args or ())]
        elif self.args is not None:
            rest = list(self.args)
        return [*args, self.image, *rest]


# -- quantities -----------------------------------------------------------------------------

_SUFFIX = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}  # fmt: skip


def memory_bytes(value: str | int) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?", str(value).strip())
    if not match:
        raise Unsupported(f"memory quantity {value!r}")
    return int(float(match.group(1)) * _SUFFIX[match.group(2) or ""])


def cpus(value: str | int | float) -> float:
    text = str(value).strip()
    if text.endswith("m"):
        return int(text[:-1]) / 1000
    try:
        return float(text)
    except ValueError:
        raise Unsupported(f"cpu quantity {value!r}") from None


def scaled(value: int | str | None, total: int, *, round_up: bool, default: str) -> int:
    """maxSurge / maxUnavailable: an int or a percentage of replicas (surge rounds up,
    unavailable rounds down, as the Deployment controller does)."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"(\d+)%", str(value))
    if not match:
        raise Unsupported(f"rolling-update value {value!r}")
    exact = int(match.group(1)) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


# -- the environment ------------------------------------------------------------------------


class Objects:
    """ConfigMaps and Secrets of the render, by name, with their data decoded."""

    def __init__(self, documents: Iterable[Obj]) -> None:
        self.config_maps: dict[str, dict[str, str]] = {}
        self.secrets: dict[str, dict[str, str]] = {}
        for doc in documents:
            name = str((doc.get("metadata") or {}).get("name", ""))
            if doc.get("kind") == "ConfigMap":
                self.config_maps[name] = {k: str(v) for k, v in (doc.get("data") or {}).items()}
            elif doc.get("kind") == "Secret":
                data = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
                data |= {k: str(v) for k, v in (doc.get("stringData") or {}).items()}
                self.secrets[name] = data

    def source(self, kind: str, name: str, optional: bool) -> dict[str, str] | None:
        store = self.config_maps if kind == "ConfigMap" else self.secrets
        if name in store:
            return store[name]
        if optional:
            return None
        raise Unsupported(
            f"{kind} {name!r} is referenced by the pod but not rendered by the chart "
            f"(rendered: {sorted(store) or 'none'}); set the values that make the chart "
            "render it, or point the reference at one it does"
        )


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion of env values: defined names are replaced, $$ escapes,
    undefined references stay as they are."""

    def one(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR.sub(one, value)


def resolve_env(container: Obj, objects: Objects, pod_fields: Mapping[str, str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        prefix = str(source.get("prefix") or "")
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            ref = source.get(key)
            if ref:
                data = objects.source(kind, str(ref["name"]), bool(ref.get("optional")))
                env |= {prefix + k: v for k, v in (data or {}).items()}
    for item in container.get("env") or []:
        name = str(item["name"])
        if "value" in item or "valueFrom" not in item:
            env[name] = expand(str(item.get("value") or ""), env)
            continue
        source = item["valueFrom"]
        for kind, key in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            ref = source.get(key)
            if not ref:
                continue
            optional = bool(ref.get("optional"))
            data = objects.source(kind, str(ref["name"]), optional)
            if data is not None and str(ref["key"]) in data:
                env[name] = data[str(ref["key"])]
            elif not optional:
                raise Unsupported(
                    f"env {name}: key {ref['key']!r} is not in {kind} {ref['name']!r} "
                    f"(keys: {sorted(data or {})})"
                )
            break
        else:
            path = str((source.get("fieldRef") or {}).get("fieldPath"))
            if path in pod_fields:
                env[name] = pod_fields[path]
            else:
                raise Unsupported(f"env {name}: valueFrom {dict(source)} (not reproduced)")
    return env


# -- the pod spec ---------------------------------------------------------------------------


def _probe(raw: Obj | None, ports: Mapping[str, int], what: str) -> Probe | None:
    if not raw:
        return None
    get = raw.get("httpGet")
    if not get:
        raise Unsupported(f"{what}: only httpGet probes are reproduced, got {sorted(raw)}")
    port = get.get("port")
    number = ports.get(port) if isinstance(port, str) else int(port)
    if number is None:
        raise Unsupported(f"{what}: port {port!r} is not a container port ({ports})")
    return Probe(
        path=str(get.get("path") or "/"),
        port=number,
        period_s=float(raw.get("periodSeconds", 10)),
        timeout_s=float(raw.get("timeoutSeconds", 1)),
        failure_threshold=int(raw.get("failureThreshold", 3)),
        success_threshold=int(raw.get("successThreshold", 1)),
        initial_delay_s=float(raw.get("initialDelaySeconds", 0)),
    )


def _prestop(container: Obj) -> PreStop:
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if not hook:
        return PreStop()
    if "sleep" in hook:
        return PreStop(sleep_s=float(hook["sleep"]["seconds"]))
    if "exec" in hook:
        return PreStop(exec_command=tuple(str(c) for c in hook["exec"]["command"]))
    raise Unsupported(f"preStop {sorted(hook)}: only sleep and exec hooks are reproduced")


def _replicas(spec: Obj, deployment: str, docs: list[Obj], notes: list[str]) -> int:
    """The Deployment's replicas; with an HPA owning the count (the chart then leaves
    `replicas` out), the HPA's minReplicas: the fewest pods a rollout can start from."""
    if "replicas" in spec:
        return int(spec["replicas"])
    for doc in docs:
        target = (doc.get("spec") or {}).get("scaleTargetRef") or {}
        if doc.get("kind") == "HorizontalPodAutoscaler" and target.get("name") == deployment:
            notes.append("replicas: owned by the HPA; rolled from its minReplicas")
            return int(doc["spec"].get("minReplicas", 1))
    return 1  # the API server's default


def _tmpfs(pod: Obj, container: Obj) -> tuple[tuple[str, int | None], ...]:
    volumes = {str(v["name"]): v for v in pod.get("volumes") or []}
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(str(mount["name"]))
        if volume is None:
            raise Unsupported(f"volumeMount {mount['name']!r} names no volume")
        if "emptyDir" not in volume:
            kinds = sorted(k for k in volume if k != "name")
            raise Unsupported(f"volume {mount['name']!r} ({kinds}): only emptyDir is reproduced")
        size = (volume.get("emptyDir") or {}).get("sizeLimit")
        mounts.append((str(mount["mountPath"]), memory_bytes(size) if size else None))
    return tuple(mounts)


def plan_from_documents(
    documents: Iterable[Obj], *, deployment: str | None = None, namespace: str = "default"
) -> PodPlan:
    docs = [d for d in documents if d]
    deployments = [d for d in docs if d.get("kind") == "Deployment"]
    if deployment is not None:
        deployments = [d for d in deployments if d["metadata"]["name"] == deployment]
    if len(deployments) != 1:
        names = [d["metadata"]["name"] for d in deployments]
        raise Unsupported(f"need exactly one Deployment in the render, found {names}")
    dep = deployments[0]
    spec = dep["spec"]
    template = spec["template"]
    pod = template["spec"]
    containers = pod.get("containers") or []
    app = next((c for c in containers if c.get("name") == APP_CONTAINER), None)
    if app is None:
        raise Unsupported(f"no container named {APP_CONTAINER!r} in the pod spec")
    notes: list[str] = []
    if len(containers) > 1 or pod.get("initContainers"):
        others = [c["name"] for c in [*containers, *(pod.get("initContainers") or [])]]
        raise Unsupported(f"only the app container is reproduced, the pod has {others}")

    pod_sc = pod.get("securityContext") or {}
    sc = {**pod_sc, **(app.get("securityContext") or {})}
    uid, gid = sc.get("runAsUser"), sc.get("runAsGroup")
    if sc.get("runAsNonRoot") and (uid is None or int(uid) == 0):
        raise Unsupported("runAsNonRoot without a numeric non-zero runAsUser")
    user = None if uid is None else f"{uid}:{gid if gid is not None else uid}"
    group_add = tuple(str(g) for g in pod_sc.get("supplementalGroups") or [])
    if pod_sc.get("fsGroup") is not None:
        group_add += (str(pod_sc["fsGroup"]),)
    caps = sc.get("capabilities") or {}
    seccomp = (sc.get("seccompProfile") or {}).get("type", "RuntimeDefault")
    if seccomp not in ("RuntimeDefault", "Unconfined"):
        raise Unsupported(f"seccompProfile {seccomp}")

    ports = {}
    for port in app.get("ports") or []:
        ports[str(port.get("name") or "")] = int(port["containerPort"])
    limits = (app.get("resources") or {}).get("limits") or {}
    if (app.get("resources") or {}).get("requests"):
        notes.append("resources.requests: no scheduler here, so requests change nothing")
    if app.get("livenessProbe"):
        notes.append("livenessProbe: not polled (a failing one would restart the container)")
    if pod.get("topologySpreadConstraints") or pod.get("affinity"):
        notes.append("topology spread / affinity: one Docker host, no nodes or zones")

    replicas = _replicas(spec, str(dep["metadata"]["name"]), docs, notes)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        raise Unsupported(f"strategy {strategy.get('type')}: only RollingUpdate is reproduced")
    rolling = strategy.get("rollingUpdate") or {}
    surge = scaled(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = scaled(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        raise Unsupported("maxSurge and maxUnavailable are both 0")

    name = str(dep["metadata"]["name"])
    objects = Objects(docs)
    fields = {"metadata.name": POD_NAME, "metadata.namespace": namespace}
    return PodPlan(
        deployment=name,
        image=str(app["image"]),
        command=tuple(app["command"]) if app.get("command") else None,
        args=tuple(app["args"]) if app.get("args") else None,
        env=resolve_env(app, objects, fields),
        user=user,
        group_add=group_add,
        read_only=bool(sc.get("readOnlyRootFilesystem")),
        tmpfs=_tmpfs(pod, app),
        cap_drop=tuple(str(c) for c in caps.get("drop") or []),
        cap_add=tuple(str(c) for c in caps.get("add") or []),
        no_new_privileges=sc.get("allowPrivilegeEscalation") is False,
        privileged=bool(sc.get("privileged")),
        seccomp_unconfined=seccomp == "Unconfined",
        cpus=cpus(limits["cpu"]) if "cpu" in limits else None,
        memory_bytes=memory_bytes(limits["memory"]) if "memory" in limits else None,
        ports=ports,
        startup=_probe(app.get("startupProbe"), ports, "startupProbe"),
        readiness=_probe(app.get("readinessProbe"), ports, "readinessProbe"),
        prestop=_prestop(app),
        termination_grace_s=float(pod.get("terminationGracePeriodSeconds", 30)),
        replicas=replicas,
        max_surge=surge,
        max_unavailable=unavailable,
        min_ready_s=float(spec.get("minReadySeconds", 0)),
        notes=notes,
    )
