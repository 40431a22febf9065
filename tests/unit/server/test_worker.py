"""GracefulUvicornWorker in this process, without forking: the early-stop record and exit,
the signal handling of DrainingServer, and _serve on a real socket (the drain ends the
server, the worker exits 0 rather than by the signal, and a failed start is a boot error).
A real Gunicorn master and fork: tests/integration/test_worker_boot_signal.py."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import queue
import signal
import socket
from collections.abc import Callable, Iterator
from types import FrameType, SimpleNamespace
from typing import Any

import pytest
from gunicorn.arbiter import Arbiter
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger as GunicornLogger
from starlette.types import Receive, Scope, Send
from uvicorn import Config

from service.server.shutdown import GracefulShutdownManager, ShutdownState
from service.server.worker import (
    CUT_SECONDS,
    STOP_SIGNALS,
    YOUNG_COLLECTION_THRESHOLD,
    DrainingServer,
    GracefulUvicornWorker,
    queued_signals,
    quick_exit,
)

MASTER_PID = 4242  # never signalled here: only /admin/shutdown uses it
TOUCHED_SIGNALS = (*STOP_SIGNALS, signal.SIGUSR1, signal.SIGWINCH, signal.SIGABRT, signal.SIGHUP)


@pytest.fixture(autouse=True)
def restored_process_state() -> Iterator[None]:
    """The worker sets process-wide signal handlers and the uvicorn loggers: put them back."""
    handlers = {sig: signal.getsignal(sig) for sig in TOUCHED_SIGNALS}
    loggers = {
        name: (lg.handlers[:], lg.level, lg.propagate)
        for name in ("uvicorn.error", "uvicorn.access")
        for lg in [logging.getLogger(name)]
    }
    yield
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    for name, (saved, level, propagate) in loggers.items():
        lg = logging.getLogger(name)
        lg.handlers[:], lg.level, lg.propagate = saved, level, propagate


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock
    sock.close()


def make_worker(app: Any, sockets: list[Any] | None = None) -> GracefulUvicornWorker:
    cfg = GunicornConfig()
    worker = GracefulUvicornWorker(0, MASTER_PID, sockets or [], app, 30, cfg, GunicornLogger(cfg))
    worker.wsgi = app  # what init_process's load_wsgi sets
    return worker


def arbiter_with(*signals: int) -> SimpleNamespace:
    """The part of Gunicorn's Arbiter a forked worker still has: its copy of SIG_QUEUE."""
    sig_queue: queue.SimpleQueue[int] = queue.SimpleQueue()
    for sig in signals:
        sig_queue.put_nowait(sig)
    return SimpleNamespace(SIG_QUEUE=sig_queue)


class App:
    """An ASGI app with a shutdown manager on its state, as create_app builds it; `on_start`
    runs once the lifespan startup is answered."""

    def __init__(
        self, manager: GracefulShutdownManager | None, on_start: Callable[[], None] | None = None
    ) -> None:
        self.state = SimpleNamespace(shutdown=manager)
        self.on_start = on_start
        self.fail_start = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.fail_start:
                    await send({"type": "lifespan.startup.failed", "message": "no"})
                    return
                await send({"type": "lifespan.startup.complete"})
                if self.on_start is not None:
                    self.on_start()
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def test_queued_signals_takes_every_signal_out_of_the_queue() -> None:
    arbiter = arbiter_with(signal.SIGHUP, signal.SIGTERM)
    assert queued_signals(arbiter) == [signal.SIGHUP, signal.SIGTERM]
    assert queued_signals(arbiter) == []


def test_a_stop_signal_queued_before_the_fork_is_recorded() -> None:
    worker = make_worker(App(None))
    worker.watch_for_early_stop(arbiter_with(signal.SIGWINCH, signal.SIGTERM, signal.SIGHUP))
    assert worker.stopped_early_by == signal.SIGTERM


def test_only_stop_signals_in_the_queue_count() -> None:
    worker = make_worker(App(None))
    worker.watch_for_early_stop(arbiter_with(signal.SIGWINCH, signal.SIGHUP, signal.SIGTTIN))
    assert worker.stopped_early_by is None


def test_a_stop_signal_arriving_after_the_fork_is_recorded_not_lost() -> None:
    worker = make_worker(App(None))
    worker.watch_for_early_stop(arbiter_with())
    for stop in STOP_SIGNALS:
        assert signal.getsignal(stop) == worker._record_stop
    signal.raise_signal(signal.SIGINT)  # the handler runs before raise_signal returns
    assert worker.stopped_early_by == signal.SIGINT


def test_a_worker_stopped_early_exits_0_at_init_signals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker = make_worker(App(None))
    worker.stopped_early_by = signal.SIGTERM
    with caplog.at_level(logging.INFO, logger="service.shutdown"), pytest.raises(SystemExit) as e:
        worker.init_signals()
    assert e.value.code == 0
    [line] = [
        r for r in caplog.records if getattr(r, "event", None) == "worker_stopped_before_serving"
    ]
    assert line.__dict__["fields"]["signal"] == "SIGTERM"


def test_a_worker_not_stopped_early_goes_on_with_default_stop_handlers() -> None:
    worker = make_worker(App(None))
    worker.watch_for_early_stop(arbiter_with())
    worker.init_signals()  # no SystemExit
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # until uvicorn takes over


def test_a_stop_signal_while_starting_up_stops_the_stock_way() -> None:
    manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
    server = DrainingServer(manager=manager, config=Config(app=App(manager)))
    server.handle_exit(signal.SIGTERM, None)  # before serve(): no loop yet
    assert server.should_exit
    assert manager.state is ShutdownState.RUNNING


def test_a_stop_signal_while_serving_starts_the_drain_instead_of_exiting() -> None:
    async def scenario() -> tuple[bool, ShutdownState]:
        manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
        manager.request_started()  # keeps the drain from finishing here
        server = DrainingServer(manager=manager, config=Config(app=App(manager)))
        server.loop = asyncio.get_running_loop()
        server.handle_exit(signal.SIGTERM, None)
        await manager.draining.wait()
        return server.should_exit, manager.state

    assert asyncio.run(scenario()) == (False, ShutdownState.DRAINING)


def test_the_end_of_the_drain_makes_the_server_exit() -> None:
    manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
    server = DrainingServer(manager=manager, config=Config(app=App(manager)))
    assert manager.on_drained is not None and not server.should_exit
    manager.on_drained()
    assert server.should_exit and not server.force_exit


def test_quick_exit_forces_the_exit() -> None:
    server = DrainingServer(manager=GracefulShutdownManager(5, 0), config=Config(app=App(None)))
    quick_exit(server)
    assert server.should_exit and server.force_exit


def test_serve_drains_on_sigterm_and_returns_instead_of_dying_by_it(
    listener: socket.socket,
) -> None:
    """The wrapped socket is handed to uvicorn unwrapped; the signal starts the drain, the
    drain ends the server; uvicorn does not re-raise the signal afterwards."""
    manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
    app = App(manager, on_start=lambda: os.kill(os.getpid(), signal.SIGTERM))
    worker = make_worker(app, [SimpleNamespace(sock=listener)])  # as Gunicorn wraps it
    reraised: list[int] = []

    def record(sig: int, frame: FrameType | None) -> None:
        reraised.append(sig)

    signal.signal(signal.SIGTERM, record)  # what runs if uvicorn re-raises the signal
    asyncio.run(asyncio.wait_for(worker._serve(), 30))
    assert manager.state is ShutdownState.STOPPING  # drained: the lifespan then finishes it
    assert manager.master_pid == MASTER_PID
    assert worker.config.timeout_graceful_shutdown == CUT_SECONDS
    assert reraised == []


def test_serve_exits_with_the_boot_error_when_the_app_does_not_start(
    listener: socket.socket,
) -> None:
    manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)
    app = App(manager)
    app.fail_start = True
    worker = make_worker(app, [listener])
    with pytest.raises(SystemExit) as exit_:
        asyncio.run(worker._serve())
    # What the master takes for a worker that cannot boot (uvicorn's STARTUP_FAILURE, or
    # the worker's own exit when the server never started: both 3).
    assert exit_.value.code == Arbiter.WORKER_BOOT_ERROR


def test_startup_freezes_what_it_made_and_raises_the_young_threshold(
    listener: socket.socket,
) -> None:
    """Once the app has started (not before: the lifespan's objects are start-up's too),
    the collector skips them and young collections wait for YOUNG_COLLECTION_THRESHOLD."""
    seen: dict[str, Any] = {}

    async def scenario() -> None:
        manager = GracefulShutdownManager(grace_period_seconds=5, shutdown_delay_seconds=0)

        def at_lifespan_start() -> None:
            seen["during"] = (gc.get_freeze_count(), gc.get_threshold()[0])
            server.should_exit = True  # served once started: then out

        server = DrainingServer(manager=manager, config=Config(app=App(manager, at_lifespan_start)))
        await server.serve(sockets=[listener])
        seen["after"] = (gc.get_freeze_count(), gc.get_threshold()[0])

    saved = gc.get_threshold()
    gc.unfreeze()
    try:
        asyncio.run(scenario())
    finally:
        gc.unfreeze()
        gc.set_threshold(*saved)
    assert seen["during"] == (0, saved[0])
    frozen, threshold = seen["after"]
    assert frozen > 1000 and threshold == YOUNG_COLLECTION_THRESHOLD
