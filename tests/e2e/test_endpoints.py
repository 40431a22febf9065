"""EndpointSlice history: when each pod left the endpoints, against its SIGTERM."""

from __future__ import annotations

from typing import Any

from tests.e2e.endpoints import (
    EndpointHistory,
    EndpointState,
    PodTiming,
    SliceSnapshot,
    render_timings,
    snapshot_from_slice,
    timing_problems,
)


def raw_slice(name: str, *endpoints: tuple[str, dict[str, bool] | None]) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "targetRef": {"kind": "Pod", "name": pod}}
            | ({"conditions": cond} if cond is not None else {})
            for pod, cond in endpoints
        ],
    }


def test_snapshot_reads_conditions_with_api_defaults() -> None:
    snap = snapshot_from_slice(
        raw_slice(
            "svc-abc",
            ("old", {"ready": False, "serving": True, "terminating": True}),
            ("new", None),  # no conditions: ready (and serving)
            ("starting", {"ready": False}),  # serving follows ready when absent
        ),
        at=10.0,
    )
    assert snap.slice == "svc-abc" and snap.at == 10.0
    assert snap.endpoints == (
        EndpointState("old", ready=False, serving=True, terminating=True),
        EndpointState("new", ready=True, serving=True, terminating=False),
        EndpointState("starting", ready=False, serving=False, terminating=False),
    )
    no_ref = {"metadata": {"name": "s"}, "endpoints": [{"addresses": ["10.0.0.9"]}]}
    assert snapshot_from_slice(no_ref, at=1.0).endpoints == ()
    assert snapshot_from_slice({"metadata": {"name": "s"}, "endpoints": None}, 1.0).endpoints == ()


def snap(at: float, name: str, *states: EndpointState, deleted: bool = False) -> SliceSnapshot:
    return SliceSnapshot(at=at, slice=name, endpoints=states, deleted=deleted)


def test_history_records_ready_left_and_removed() -> None:
    h = EndpointHistory()
    h.observe(snap(1.0, "s1", EndpointState("a", True), EndpointState("b", True)))
    h.observe(snap(2.0, "s1", EndpointState("a", True), EndpointState("b", True),
                   EndpointState("c", False)))  # fmt: skip
    h.observe(snap(3.0, "s1", EndpointState("a", True), EndpointState("b", True),
                   EndpointState("c", True)))  # fmt: skip
    h.observe(snap(4.0, "s1", EndpointState("a", False, True, True), EndpointState("b", True),
                   EndpointState("c", True)))  # fmt: skip
    h.observe(snap(9.0, "s1", EndpointState("b", True), EndpointState("c", True)))
    assert h.ready_at == {"a": 1.0, "b": 1.0, "c": 3.0}
    assert h.left_at == {"a": 4.0}
    assert h.removed_at == {"a": 9.0}
    assert h.in_rotation() == {"b", "c"}
    assert h.snapshots == 5


def test_a_pod_ready_in_another_slice_has_not_left() -> None:
    h = EndpointHistory()
    h.observe(snap(1.0, "s1", EndpointState("a", True)))
    h.observe(snap(1.5, "s2", EndpointState("a", True)))  # moved between slices
    h.observe(snap(2.0, "s1"))
    assert h.left_at == {} and h.in_rotation() == {"a"}
    h.observe(snap(3.0, "s2", deleted=True))
    assert h.left_at == {"a": 3.0} and h.removed_at == {"a": 3.0}


def test_margins_and_problems() -> None:
    good = PodTiming("p1", deleted_at=100.0, left_at=100.4, removed_at=112.0,
                     sigterm_at=105.1, exited_at=111.5)  # fmt: skip
    late = PodTiming("p2", deleted_at=200.0, left_at=206.0, removed_at=None,
                     sigterm_at=205.0, exited_at=None)  # fmt: skip
    unseen = PodTiming("p3", None, None, None, None, None)
    assert good.margin_s == 4.7
    assert late.margin_s == -1.0
    assert unseen.margin_s is None
    problems = timing_problems([good, late, unseen])
    assert problems == [
        "p2: got SIGTERM 1.00 s before it left the endpoints "
        "(new connections could still reach a draining pod)",
        "p3: never seen leaving the endpoints (was it ever ready?)",
        "p3: no shutdown_started (SIGTERM) line in its log",
    ]
    table = render_timings([good, unseen])
    assert table[1].split() == ["p1", "+0.40s", "+12.00s", "+5.10s", "+11.50s", "4.70s"]
    assert table[2].split() == ["p3", "-", "-", "-", "-", "-"]
