"""GracefulUvicornWorker: a Gunicorn worker that drains before it closes its listener.

Stock UvicornWorker closes the listening socket the moment SIGTERM arrives, so new
connections are refused while in-flight requests finish. Here SIGTERM/SIGINT only start
the app's GracefulShutdownManager; uvicorn's own exit (close listener, finish
connections, lifespan cleanup) starts when the drain is over.

A stop signal that arrives while a worker boots, between its fork and its own signal
set-up, stops it before it serves (watch_for_early_stop); Gunicorn alone loses it and
the master waits out graceful_timeout before it kills the worker."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import os
import queue
import signal
import sys
from types import FrameType
from typing import Any

from gunicorn.arbiter import Arbiter
from uvicorn.server import Server
from uvicorn_worker import UvicornWorker

from service.server.shutdown import GracefulShutdownManager
from service.telemetry.logs import get_logger

log = get_logger("service.shutdown")
# After the grace period, requests still running get this long, then are cancelled.
CUT_SECONDS = 0.5
# Net allocations of tracked objects between young collections (Python's default: 700).
YOUNG_COLLECTION_THRESHOLD = 20_000
# What the master sends its workers to stop them (SIGINT: Ctrl-C reaches the whole group).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT})


class DrainingServer(Server):
    def __init__(self, manager: GracefulShutdownManager, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.manager = manager
        self.loop: asyncio.AbstractEventLoop | None = None
        manager.on_drained = self._exit_now

    def _exit_now(self) -> None:
        self.should_exit = True

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Not recorded in _captured_signals: uvicorn would re-raise it at exit and the
        # worker would die by the signal instead of exiting 0 after its cleanup.
        if self.loop is None:  # still starting up: stop the stock way
            self.should_exit = True
            return
        # A signal handler runs inside whatever the main thread was doing, often a
        # request's task: without a fresh context the drain's log lines would carry
        # that request's request_id and trace ids.
        self.loop.call_soon_threadsafe(
            self.manager.begin, signal.Signals(sig).name, context=contextvars.Context()
        )

    async def serve(self, sockets: list[Any] | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        await super().serve(sockets=sockets)

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets=sockets)
        tune_garbage_collector()


def tune_garbage_collector() -> None:
    """Once the app has started. Requests free what they make by reference counting; what
    outlives them is the spans waiting in the export queue (6 tracked objects each, up to
    OTEL_BSP_MAX_QUEUE_SIZE, 2048 by default). At the default threshold (700) those set
    off a young collection every few dozen requests and, promoted, full collections that
    walked the whole heap: with export, `make bench` measured them at a large part of
    the export's cost (bench/README.md). So:
    - what start-up made (modules, the app, its pools) lives as long as the worker: out
      of the collector's way (gc.freeze), a full collection walks only the rest;
    - the young generation's threshold sits above a full default queue."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])


def quick_exit(server: Server) -> None:
    """SIGQUIT stays a quick exit (Gunicorn's quick shutdown, a second Ctrl-C)."""
    server.force_exit = True
    server.should_exit = True


def queued_signals(arbiter: Arbiter) -> list[int]:
    """The signals in this process's copy of the master's queue, taken out of it."""
    taken = []
    while True:
        try:
            taken.append(arbiter.SIG_QUEUE.get_nowait())
        except queue.Empty:
            return taken


class GracefulUvicornWorker(UvicornWorker):  # type: ignore[misc]
    # A stop signal received before the worker's own handlers were set, if any.
    stopped_early_by: int | None = None

    def watch_for_early_stop(self, arbiter: Arbiter) -> None:
        """Called first thing after the fork (the post_fork hook). Until now this process
        ran the master's handler, which only queues a signal for the master's loop: here,
        in a copy of that queue that nobody reads, so a SIGTERM sent by a master shutting
        down was lost and the worker booted and served until the master killed it. From
        here to init_signals a stop signal is recorded instead."""
        for stop in STOP_SIGNALS:
            signal.signal(stop, self._record_stop)
        for queued in queued_signals(arbiter):
            if queued in STOP_SIGNALS:
                self.stopped_early_by = queued

    def _record_stop(self, sig: int, frame: FrameType | None) -> None:
        self.stopped_early_by = sig

    def init_signals(self) -> None:
        # From here until uvicorn takes the stop signals over, they end the process at
        # once (SIG_DFL): the app is not serving yet, so nothing is lost.
        super().init_signals()
        if self.stopped_early_by is not None:
            log.info(
                "worker_stopped_before_serving",
                signal=signal.Signals(self.stopped_early_by).name,
                pid=os.getpid(),
            )
            sys.exit(0)

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        manager = getattr(getattr(self.wsgi, "state", None), "shutdown", None)
        if not isinstance(manager, GracefulShutdownManager):
            await super()._serve()  # an app without a manager: stock behaviour
            return
        manager.master_pid = self.ppid
        self.config.timeout_graceful_shutdown = CUT_SECONDS
        server = DrainingServer(manager=manager, config=self.config)
        asyncio.get_running_loop().add_signal_handler(signal.SIGQUIT, quick_exit, server)
        # uvicorn gets the plain socket objects inside Gunicorn's wrappers: when uvloop
        # closes a listener it detaches a plain socket, but calls close() on anything
        # else and expects EBADF, which Gunicorn's wrapper logs at every worker exit as
        # "Error while closing socket [Errno 9] Bad file descriptor".
        await server.serve(sockets=[getattr(sock, "sock", sock) for sock in self.sockets])
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
