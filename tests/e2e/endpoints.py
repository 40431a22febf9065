"""When each pod left a Service's endpoints, from EndpointSlice snapshots, against its SIGTERM.

The suite watches the Service's EndpointSlices during a rollout and feeds every snapshot to
EndpointHistory (wall-clock seconds). A pod "leaves" when no slice lists it as ready any
more: kube-proxy then sends it no new connections. A terminating pod usually stays in the
slice for a while with ready=false (serving, terminating), and is removed when it is gone.

preStop exists so that the pod leaves before it gets SIGTERM: the margin (SIGTERM time
minus leave time, from the pod's own shutdown_started line) must be positive. The log's
times are the node's clock, converted to this machine's (tests/e2e/clock.py) give or take
`clock_error_s`; the margin counts only when it is positive by more than that error. (The
watch delivers a change after it happened, so the true margin is if anything larger.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tools.drill.results import Event, removal_margins

LEFT = "endpoint_not_ready"  # event names on the shared Event timeline
REMOVED = "endpoint_removed"
SIGTERM = "sigterm"


@dataclass(frozen=True)
class EndpointState:
    pod: str
    ready: bool
    serving: bool = True
    terminating: bool = False


@dataclass(frozen=True)
class SliceSnapshot:
    at: float  # wall-clock seconds (time.time()) when the watch delivered it
    slice: str  # EndpointSlice name
    endpoints: tuple[EndpointState, ...] = ()
    deleted: bool = False


def _condition(conditions: Mapping[str, Any] | None, name: str, default: bool) -> bool:
    value = (conditions or {}).get(name)
    return default if value is None else bool(value)


def snapshot_from_slice(raw: Mapping[str, Any], at: float, deleted: bool = False) -> SliceSnapshot:
    """A SliceSnapshot from an EndpointSlice as JSON (the watch's raw_object)."""
    endpoints = []
    for ep in raw.get("endpoints") or []:
        ref = ep.get("targetRef") or {}
        if ref.get("kind", "Pod") != "Pod" or not ref.get("name"):
            continue
        cond = ep.get("conditions")
        # API semantics: a missing ready condition means ready, missing serving follows ready.
        ready = _condition(cond, "ready", True)
        endpoints.append(
            EndpointState(
                pod=str(ref["name"]),
                ready=ready,
                serving=_condition(cond, "serving", ready),
                terminating=_condition(cond, "terminating", False),
            )
        )
    name = str((raw.get("metadata") or {}).get("name", ""))
    return SliceSnapshot(at=at, slice=name, endpoints=tuple(endpoints), deleted=deleted)


@dataclass
class EndpointHistory:
    """The union of a Service's slices over time, and when each pod entered and left it."""

    slices: dict[str, dict[str, EndpointState]] = field(default_factory=dict)
    ready_at: dict[str, float] = field(default_factory=dict)  # first time seen ready
    left_at: dict[str, float] = field(default_factory=dict)  # ready -> not ready anywhere
    removed_at: dict[str, float] = field(default_factory=dict)  # listed -> in no slice
    snapshots: int = 0

    def _view(self) -> dict[str, EndpointState]:
        view: dict[str, EndpointState] = {}
        for endpoints in self.slices.values():
            for pod, state in endpoints.items():
                if pod not in view or (state.ready and not view[pod].ready):
                    view[pod] = state
        return view

    def observe(self, snap: SliceSnapshot) -> None:
        before = self._view()
        if snap.deleted:
            self.slices.pop(snap.slice, None)
        else:
            self.slices[snap.slice] = {e.pod: e for e in snap.endpoints}
        after = self._view()
        self.snapshots += 1
        for pod, state in after.items():
            if state.ready:
                self.ready_at.setdefault(pod, snap.at)
        for pod, state in before.items():
            now = after.get(pod)
            if state.ready and (now is None or not now.ready):
                self.left_at.setdefault(pod, snap.at)
            if now is None:
                self.removed_at.setdefault(pod, snap.at)

    def in_rotation(self) -> set[str]:
        return {pod for pod, state in self._view().items() if state.ready}


@dataclass(frozen=True)
class PodTiming:
    """One replaced pod, every time in wall-clock seconds (None: not observed)."""

    pod: str
    deleted_at: float | None
    left_at: float | None  # no longer ready in any EndpointSlice
    removed_at: float | None  # in no EndpointSlice any more
    sigterm_at: float | None  # its shutdown_started line (on this machine's clock)
    exited_at: float | None  # its last log line (shutdown_complete; this machine's clock)
    clock_error_s: float = 0.0  # how far the two log times may be off (node clock)

    def events(self) -> list[Event]:
        named = ((LEFT, self.left_at), (REMOVED, self.removed_at), (SIGTERM, self.sigterm_at))
        return [Event(t, name, self.pod) for name, t in named if t is not None]

    @property
    def margin_s(self) -> float | None:
        """Seconds from leaving the endpoints to SIGTERM (positive: left first)."""
        return removal_margins(self.events(), removed=LEFT, signalled=SIGTERM).get(self.pod)


def timing_problems(timings: Iterable[PodTiming]) -> list[str]:
    problems: list[str] = []
    for t in timings:
        if t.left_at is None:
            problems.append(f"{t.pod}: never seen leaving the endpoints (was it ever ready?)")
        if t.sigterm_at is None:
            problems.append(f"{t.pod}: no shutdown_started (SIGTERM) line in its log")
        margin = t.margin_s
        if margin is not None and margin <= 0:
            problems.append(
                f"{t.pod}: got SIGTERM {-margin:.2f} s before it left the endpoints "
                "(new connections could still reach a draining pod)"
            )
        elif margin is not None and margin <= t.clock_error_s:
            problems.append(
                f"{t.pod}: got SIGTERM only {margin:.3f} s after it left the endpoints, within "
                f"the node clock's error (+- {t.clock_error_s:.3f} s): it may have come first"
            )
    return problems


def render_timings(timings: Sequence[PodTiming]) -> list[str]:
    """A table, times relative to each pod's deletion."""

    def rel(t: PodTiming, value: float | None) -> str:
        if value is None or t.deleted_at is None:
            return "-"
        return f"{value - t.deleted_at:+.2f}s"

    lines = [
        "pod                                      left eps  removed   SIGTERM   exited    margin"
    ]
    for t in timings:
        margin = "-" if t.margin_s is None else f"{t.margin_s:.2f}s"
        margin += f" +-{t.clock_error_s:.3f}s" if t.clock_error_s else ""
        lines.append(
            f"{t.pod:<40} {rel(t, t.left_at):>8}  {rel(t, t.removed_at):>8}  "
            f"{rel(t, t.sigterm_at):>8}  {rel(t, t.exited_at):>8}  {margin:>7}"
        )
    lines.append(
        "(seconds after the pod was deleted; margin = SIGTERM - left endpoints, +- the error "
        "of the node clock's offset)"
    )
    return lines
