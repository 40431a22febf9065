"""The node clock's offset (tests/e2e/clock.py), with a stand-in `docker` whose "node" runs
a clock some seconds off this machine's, like Docker Desktop's VM after a sleep."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.clock import (
    ClockOffset,
    deletion_problems,
    estimate,
    measure,
    node_offset,
)
from tests.e2e.endpoints import PodTiming, render_timings, timing_problems

# `docker exec NODE date +%s.%N`: this machine's time plus $NODE_OFFSET, after $NODE_DELAY.
DOCKER_STANDIN = """#!/usr/bin/env bash
echo "$*" >> "$STANDIN_CALLS"
[ "$1 $3 $4" = "exec date +%s.%N" ] || { echo "unexpected: $*" >&2; exit 2; }
[ "$2" = known-node ] || { echo "Error response from daemon: No such container: $2" >&2; exit 1; }
sleep "${NODE_DELAY:-0}"
date +%s.%N | awk -v o="$NODE_OFFSET" '{ printf "%.6f\\n", $1 + o }'
"""


@pytest.fixture
def docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = tmp_path / "docker"
    path.write_text(DOCKER_STANDIN)
    path.chmod(0o755)
    monkeypatch.setenv("STANDIN_CALLS", str(tmp_path / "calls"))
    return str(path)


@pytest.mark.parametrize("offset", [-7.25, 0.0, 93.5])
def test_a_drifted_node_clock_is_measured_within_its_error(
    docker: str, offset: float, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("NODE_OFFSET", str(offset))
    measured = node_offset(docker, "known-node", rounds=3)
    # A bound, not a speed: the node read its clock between the two host readings, so
    # the true offset is within the error whatever the round trip took (+1 us: printf).
    assert abs(measured.offset_s - offset) <= measured.error_s + 1e-6, measured
    assert measured.error_s > 0
    assert (tmp_path / "calls").read_text().splitlines() == ["exec known-node date +%s.%N"] * 3


def test_a_slow_round_trip_widens_the_error_not_the_offset(
    docker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_OFFSET", "-3")
    monkeypatch.setenv("NODE_DELAY", "0.2")
    measured = node_offset(docker, "known-node", rounds=2)
    assert measured.error_s >= 0.1  # half of a round trip of at least 0.2 s
    assert abs(measured.offset_s + 3) <= measured.error_s + 1e-6, measured


def test_a_node_without_a_clock_fails_with_dockers_answer(
    docker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_OFFSET", "0")
    with pytest.raises(AssertionError, match="No such container: gone-node"):
        node_offset(docker, "gone-node")


def pair(c: ClockOffset) -> tuple[float, float]:
    return c.offset_s, c.error_s


def test_the_shortest_round_trip_is_the_one_used() -> None:
    samples = [(100.0, 160.9, 101.0), (200.0, 260.02, 200.04), (300.0, 359.0, 300.5)]
    assert pair(estimate(samples)) == pytest.approx((60.0, 0.02))
    with pytest.raises(ValueError, match="no clock samples"):
        estimate([])
    with pytest.raises(ValueError, match="backwards"):
        estimate([(5.0, 1.0, 4.0)])
    ticks = iter([10.0, 10.5, 20.0, 20.1])
    nodes = iter([5.3, 15.05])
    measured = measure(lambda: next(nodes), rounds=2, host_clock=lambda: next(ticks))
    assert pair(measured) == pytest.approx((-5.0, 0.05))


def test_two_measurements_join_into_one_interval_that_holds_the_drift() -> None:
    before, after = ClockOffset(-7.0, 0.01), ClockOffset(-6.5, 0.02)
    joined = before.join(after)
    assert joined.offset_s == pytest.approx(-6.745) and joined.error_s == pytest.approx(0.265)
    assert joined.to_host(1000.0) == pytest.approx(1006.745)
    assert pair(before.join(before)) == pytest.approx((-7.0, 0.01))


def deletion(sigterm_node: float, exited_node: float, offset: float = -7.0) -> list[str]:
    """A pod deleted at host time 100 (the call took 0.2 s): preStop 5, grace 45."""
    return deletion_problems(
        prestop_s=5, termination_s=45, delete_started=100.0, deleted_at=100.2,
        sigterm_node=sigterm_node, exited_node=exited_node,
        clock=ClockOffset(offset, 0.01),
    )  # fmt: skip


def test_deletion_checks_use_the_node_clock_and_fail_only_when_certain() -> None:
    # Node clock 7 s behind: SIGTERM at node 98.3 is host 105.3, 5.3 s after the delete.
    assert deletion(98.3, 104.0) == []
    # Without the conversion, the same pod "got SIGTERM before its preStop ended":
    assert deletion(98.3, 104.0, offset=0.0) != []
    # Inside the error and the call's duration, SIGTERM at exactly preStop passes ...
    assert deletion(97.995, 104.0) == []
    # ... and clearly before it fails, naming the clock.
    (problem,) = deletion(97.5, 104.0)
    assert "before the 5 s preStop could end" in problem and "node clock -7.000 s" in problem
    # The exit: well inside terminationGracePeriodSeconds, or certainly past it.
    assert deletion(98.3, 138.2) == []  # host 145.2: 45.0 after the call returned, minus error
    (late,) = deletion(98.3, 139.0)
    assert "SIGKILL territory" in late and "terminationGracePeriodSeconds 45" in late


def test_endpoint_margin_must_be_positive_by_more_than_the_clock_error() -> None:
    def timing(sigterm_at: float, error: float) -> PodTiming:
        return PodTiming("pod-a", 100.0, 101.0, 110.0, sigterm_at, 108.0, clock_error_s=error)

    assert timing_problems([timing(104.0, 0.02)]) == []
    (problem,) = timing_problems([timing(101.01, 0.02)])
    assert "pod-a: got SIGTERM only 0.010 s after it left the endpoints" in problem
    assert "within the node clock's error (+- 0.020 s)" in problem
    assert timing_problems([timing(100.5, 0.0)]) != []
    table = "\n".join(render_timings([timing(104.0, 0.02)]))
    assert "3.00s +-0.020s" in table and "+1.00s" in table
