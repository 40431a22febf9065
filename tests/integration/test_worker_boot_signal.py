"""A stop signal that reaches a worker while it boots, before its own signal handlers are
set, still stops it: the real Gunicorn command, a worker held in the post_fork hook, a
real SIGTERM to the master. Gunicorn alone loses that signal (the worker's copy of the
master's handler queues it where nobody reads it): the master then waits out
graceful_timeout and kills a worker that has booted and served meanwhile; the control
case shows it."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tools.testbed.servers import ServiceProcess

pytestmark = pytest.mark.integration

GRACE_PERIOD_SECONDS = 3
GRACEFUL_TIMEOUT_SECONDS = GRACE_PERIOD_SECONDS + 5 + 2  # as service.gunicorn_conf derives it

# The product's configuration with a post_fork hook that holds the booting worker until
# the stop signal has reached it: before the product's hook ("before": the signal lands in
# the master's handler this process inherited, which queues it), after it ("after": the
# signal lands in the worker's recorder), or before it with the product's watch turned
# off ("unwatched": the control, Gunicorn's own behaviour).
HELD_CONFIG = """
import os
import time

from service import gunicorn_conf as _product
from service.telemetry.logs import get_logger

globals().update({k: v for k, v in vars(_product).items() if not k.startswith("__")})
_HOLD = os.environ["TEST_HOLD"]
_log = get_logger("test.boot")


def _held_until_signalled(arrived) -> None:
    _log.info("worker_held")
    deadline = time.monotonic() + 60
    while not arrived() and time.monotonic() < deadline:
        time.sleep(0.02)
    _log.info("worker_let_go", signalled=arrived())


def post_fork(server, worker):
    if _HOLD == "after":
        _product.post_fork(server, worker)
        _held_until_signalled(lambda: worker.stopped_early_by is not None)
        return
    _held_until_signalled(lambda: not server.SIG_QUEUE.empty())
    if _HOLD == "unwatched":
        worker.watch_for_early_stop = lambda arbiter: None
    _product.post_fork(server, worker)
"""


def held_service(tmp_path: Path, hold: str) -> ServiceProcess:
    (tmp_path / "held_gunicorn_conf.py").write_text(HELD_CONFIG)
    service = ServiceProcess(
        env={
            "WEB_CONCURRENCY": "1",
            "GRACE_PERIOD_SECONDS": str(GRACE_PERIOD_SECONDS),
            "PYTHONPATH": str(tmp_path),
            "TEST_HOLD": hold,
        },
        tmp_dir=tmp_path,
    )
    service.command[service.command.index("python:service.gunicorn_conf")] = (
        "python:held_gunicorn_conf"
    )
    return service.start(wait=None)


def sigterm_while_held(service: ServiceProcess) -> float:
    """SIGTERM to the master while its worker is held (the master forwards it); the
    seconds from the signal to the master's exit, which must be code 0."""
    with service:  # stopped whatever fails
        service.wait_for_event("worker_held", timeout_s=60)
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        assert service.wait(timeout_s=GRACEFUL_TIMEOUT_SECONDS + 30) == 0, service.output()
    assert service.events("worker_let_go")[0]["signalled"] is True, service.output()
    return time.monotonic() - signalled


@pytest.mark.parametrize("hold", ["before", "after"])
def test_a_worker_signalled_while_it_boots_stops_without_serving(tmp_path: Path, hold: str) -> None:
    service = held_service(tmp_path, hold)
    seconds = sigterm_while_held(service)
    stopped = service.events("worker_stopped_before_serving")
    assert [r["signal"] for r in stopped] == ["SIGTERM"], service.output()
    assert not service.events("application_startup_complete"), "the worker served"
    # Without the watch the master waits out graceful_timeout (the control below); with
    # it the worker exits as soon as it is let go (well under a second here).
    assert seconds < GRACEFUL_TIMEOUT_SECONDS / 2, service.output()


def test_control_without_the_watch_the_master_waits_out_graceful_timeout(
    tmp_path: Path,
) -> None:
    service = held_service(tmp_path, "unwatched")
    seconds = sigterm_while_held(service)
    # The signal was lost: the worker booted and served until the master killed it.
    assert not service.events("worker_stopped_before_serving")
    assert service.events("application_startup_complete"), service.output()
    assert seconds >= GRACEFUL_TIMEOUT_SECONDS - 1, service.output()
