"""The rollout command beside the load: exit codes and time limits become problems."""

from __future__ import annotations

import asyncio

from tools.drill.results import Timeline
from tools.drill.rollout import command_action


def run(command: str, timeout_s: float = 5.0) -> tuple[list[str], Timeline]:
    timeline = Timeline()
    problems = asyncio.run(command_action(command, timeout_s)(timeline))
    return problems, timeline


def test_successful_command() -> None:
    problems, timeline = run("echo rolling; exit 0")
    assert problems == []
    assert [e.name for e in timeline.events] == ["rollout_started", "rollout_finished"]
    assert timeline.events[-1].detail == {"code": 0}


def test_failing_command_is_a_problem() -> None:
    problems, timeline = run("exit 3")
    assert problems == ["rollout command exited with code 3"]
    assert timeline.events[-1].detail == {"code": 3}


def test_command_past_its_deadline_is_killed() -> None:
    problems, _ = run("sleep 30", timeout_s=0.3)
    assert problems == ["rollout command still running after 0.3 s (killed)"]
