"""Run a rollout command (any shell command) beside the load, e.g. a `kubectl rollout`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

from tools.drill.load import Beside
from tools.drill.results import Timeline


def command_action(command: str, timeout_s: float = 600.0) -> Beside:
    """An action for `run_drill`: run `command` with bash, echo its output, report its exit."""

    async def action(timeline: Timeline) -> list[str]:
        timeline.record("rollout_started", "command", command=command)
        proc = await asyncio.create_subprocess_exec(
            "bash", "-c", command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None

        async def echo() -> None:
            assert proc.stdout is not None
            while line := await proc.stdout.readline():
                text = line.decode(errors="replace").rstrip()
                print(f"[rollout t={timeline.now():6.1f}s] {text}", file=sys.stderr, flush=True)

        try:
            async with asyncio.timeout(timeout_s):
                await echo()
                code = await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            timeline.record("rollout_finished", "command", code=None)
            return [f"rollout command still running after {timeout_s:g} s (killed)"]
        timeline.record("rollout_finished", "command", code=code)
        return [] if code == 0 else [f"rollout command exited with code {code}"]

    return action
