"""This machine's clock against a kind node's, so times from both can be compared.

A pod's log timestamps come from its node's clock; the suite's own times (when the delete
call returned, when a watch delivered an EndpointSlice) from this machine's. On Linux with
Docker Engine both are one kernel clock, but Docker Desktop runs the nodes in a VM whose
clock drifts from the host's, by seconds after a sleep. So the suite measures the offset:
`docker exec <node> date +%s.%N` bracketed by two host readings, a few times; the round
trip that was shortest bounds the error best. The node read its clock at some moment
between the two host readings, so with `before`, `node`, `after`:

    offset = node - (before + after) / 2      error = (after - before) / 2

and the true offset lies in [offset - error, offset + error]. A node time t is
`t - offset` on this machine's clock, give or take `error`. Measured before and after a
test, the two intervals are joined (`ClockOffset.join`), which also covers drift between.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Sample = tuple[float, float, float]  # (host before, node, host after)
ROUNDS = 5


@dataclass(frozen=True)
class ClockOffset:
    offset_s: float  # node clock minus this machine's clock
    error_s: float  # the true offset is within offset_s +- error_s

    def to_host(self, node_time: float) -> float:
        """A node time (e.g. a log timestamp) on this machine's clock (give or take error_s)."""
        return node_time - self.offset_s

    def join(self, other: ClockOffset) -> ClockOffset:
        """The smallest interval holding both (two measurements, drift between them)."""
        low = min(self.offset_s - self.error_s, other.offset_s - other.error_s)
        high = max(self.offset_s + self.error_s, other.offset_s + other.error_s)
        return ClockOffset((low + high) / 2, (high - low) / 2)

    def describe(self) -> str:
        return f"node clock {self.offset_s:+.3f} s +- {self.error_s:.3f} s against this machine"


def estimate(samples: Sequence[Sample]) -> ClockOffset:
    """The offset from the sample with the shortest round trip."""
    if not samples:
        raise ValueError("no clock samples")
    before, node, after = min(samples, key=lambda s: s[2] - s[0])
    if after < before:
        raise ValueError(f"host clock went backwards in a sample: {before} > {after}")
    return ClockOffset(node - (before + after) / 2, (after - before) / 2)


def measure(
    read_node: Callable[[], float],
    rounds: int = ROUNDS,
    host_clock: Callable[[], float] = time.time,
) -> ClockOffset:
    samples = []
    for _ in range(rounds):
        before = host_clock()
        node = read_node()
        after = host_clock()
        samples.append((before, node, after))
    return estimate(samples)


def docker_date(docker: str, container: str, timeout_s: float = 30) -> Callable[[], float]:
    """Reads a container's clock (a kind node is a container named like the node)."""

    def read() -> float:
        done = subprocess.run(
            [docker, "exec", container, "date", "+%s.%N"],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        out = done.stdout.strip()
        try:
            return float(out)
        except ValueError:
            raise AssertionError(
                f"`{docker} exec {container} date +%s.%N` gave no time "
                f"(exit {done.returncode}): {out[:200]} {done.stderr.strip()[:300]}"
            ) from None

    return read


def node_offset(docker: str, node: str, rounds: int = ROUNDS) -> ClockOffset:
    """The clock offset of kind node `node` (its container has the node's name)."""
    return measure(docker_date(docker, node), rounds)


LOG_RESOLUTION_S = 0.001  # the app's timestamps carry milliseconds


def deletion_problems(
    *,
    prestop_s: float,
    termination_s: float,
    delete_started: float,
    deleted_at: float,
    sigterm_node: float,
    exited_node: float,
    clock: ClockOffset,
) -> list[str]:
    """A deleted pod's SIGTERM came no earlier than its preStop, and it exited before its
    terminationGracePeriodSeconds; host times (`time.time()` before and after the delete
    call) against the pod's log times (node clock). Each check fails only on a certain
    violation: the node times are moved by the clock error toward passing, and the
    deletion is taken at whichever end of the delete call is kinder."""
    problems = []
    sigterm_latest = clock.to_host(sigterm_node) + clock.error_s + LOG_RESOLUTION_S
    after_delete = sigterm_latest - delete_started
    if after_delete < prestop_s:
        problems.append(
            f"SIGTERM at most {after_delete:.3f} s after the delete call began, before the "
            f"{prestop_s:g} s preStop could end: no preStop? ({clock.describe()})"
        )
    exited_earliest = clock.to_host(exited_node) - clock.error_s
    exit_after = exited_earliest - deleted_at
    if exit_after >= termination_s:
        problems.append(
            f"exited at least {exit_after:.3f} s after the delete call returned, past "
            f"terminationGracePeriodSeconds {termination_s:g}: SIGKILL territory "
            f"({clock.describe()})"
        )
    return problems
