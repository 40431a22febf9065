from __future__ import annotations

import asyncio
import signal

from uvicorn import Config

from service.request import context
from service.server.shutdown import GracefulShutdownManager, ShutdownState
from service.server.worker import DrainingServer


async def _drain(manager: GracefulShutdownManager) -> list[str]:
    calls: list[str] = []
    manager.on_drained = lambda: calls.append("drained")
    manager.begin("SIGTERM")
    await asyncio.wait_for(_until(lambda: bool(calls)), 5)
    return calls


async def _until(condition: object) -> None:
    while not condition():  # type: ignore[operator]
        await asyncio.sleep(0.01)


def test_states_and_idempotence() -> None:
    async def scenario() -> None:
        manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
        assert manager.state is ShutdownState.RUNNING and not manager.is_draining
        manager.request_started()
        manager.on_drained = lambda: None
        manager.begin("SIGTERM")
        first_start = manager.drain_started
        assert manager.draining.is_set() and manager.state.value == "draining"
        await asyncio.sleep(0.1)
        manager.begin("SIGTERM")  # the second signal keeps the first clock
        assert manager.drain_started == first_start
        assert manager.state.value == "draining"  # one request still in flight
        manager.request_finished()
        await _until(lambda: manager.state.value == "stopping")
        manager.finish()
        assert manager.state.value == "stopped" and manager.stopped.is_set()

    asyncio.run(scenario())


def test_delay_serves_then_rejects() -> None:
    async def scenario() -> None:
        manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0.3)
        manager.on_drained = lambda: None
        manager.begin("SIGTERM")
        assert manager.is_draining and not manager.rejecting
        await asyncio.sleep(0.35)
        assert manager.rejecting

    asyncio.run(scenario())


def test_grace_period_bounds_the_wait() -> None:
    async def scenario() -> None:
        manager = GracefulShutdownManager(grace_period_seconds=0.3, shutdown_delay_seconds=0)
        manager.request_started()  # never finishes
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await _drain(manager) == ["drained"]
        assert 0.25 <= loop.time() - started < 2

    asyncio.run(scenario())


def test_delay_never_exceeds_grace() -> None:
    manager = GracefulShutdownManager(grace_period_seconds=2, shutdown_delay_seconds=10)
    assert manager.shutdown_delay_seconds == 2


def test_a_signal_during_a_request_starts_the_drain_outside_that_request() -> None:
    seen: list[str | None] = []

    async def scenario() -> None:
        manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
        server = DrainingServer(manager=manager, config=Config(app="service.main:app"))
        server.loop = asyncio.get_running_loop()
        manager.begin = lambda reason: seen.append(context.request_id.get())  # type: ignore[method-assign]
        token = context.request_id.set("the-request-that-was-running")
        server.handle_exit(signal.SIGTERM, None)  # as if the signal interrupted it
        context.request_id.reset(token)
        await _until(lambda: bool(seen))

    asyncio.run(scenario())
    assert seen == [None]
