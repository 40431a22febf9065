"""Constant-rate HTTP load (open model) with an optional action running beside it.

Requests are due at fixed intervals whatever happens to earlier ones, so a stalled server
cannot slow the load down and hide its own failures; latency is measured from the due time.
Nothing is retried: a request that fails is counted once, with the reason.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tools.drill import http
from tools.drill.errors import ErrorKind, Failure, classify
from tools.drill.results import RequestResult, Summary, Timeline, summarize

SERVER_HEADER = "x-drill-server"
VERSION_HEADER = "x-app-version"  # the service's APP_VERSION, on every response


@dataclass(frozen=True)
class RequestKind:
    """One entry of the mix. `path` and `body` may contain `{n}`, the request's number."""

    name: str
    method: str
    path: str
    timeout_s: float
    body: str = ""

    def render(self, n: int, host: str, request_id: str) -> bytes:
        headers = {"X-Request-ID": request_id}
        body = self.body.replace("{n}", str(n)).encode()
        if body:
            headers["Content-Type"] = "application/json"
        return http.render_request(
            self.method, self.path.replace("{n}", str(n)), host, headers, body
        )


def default_kinds(long_task_seconds: float = 3.0, fast_ms: int = 1) -> dict[str, RequestKind]:
    """The drill's usual mix entries: fast requests, the database, and long tasks."""
    return {
        "fast": RequestKind("fast", "GET", f"/api/slow?ms={fast_ms}", timeout_s=10),
        "items": RequestKind("items", "GET", "/api/items?limit=10", timeout_s=10),
        "items_write": RequestKind(
            "items_write",
            "POST",
            "/api/items",
            timeout_s=10,
            body=json.dumps({"name": "drill-{n}", "description": "rolling-update drill"}),
        ),
        "long": RequestKind(
            "long",
            "GET",
            f"/api/long-task?seconds={long_task_seconds:g}",
            timeout_s=long_task_seconds + 10,
        ),
    }


DEFAULT_MIX = "fast=70,items=21,items_write=7,long=2"


def parse_mix(text: str, known: set[str]) -> dict[str, int]:
    """Parse "fast=70,items=25,long=5" into weights; every name must be a known kind."""
    weights: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not value.strip().isdigit():
            raise ValueError(f"mix entry must be name=weight: {part!r}")
        if name not in known:
            raise ValueError(f"unknown mix entry {name!r} (known: {', '.join(sorted(known))})")
        weights[name] = int(value)
    if not weights or sum(weights.values()) == 0:
        raise ValueError("the mix needs at least one entry with a weight above 0")
    return weights


@dataclass
class LoadConfig:
    url: str  # base URL, e.g. http://127.0.0.1:8080
    rate: float  # requests per second
    duration_s: float  # minimum length of the load
    kinds: dict[str, RequestKind] = field(default_factory=default_kinds)
    mix: dict[str, int] = field(
        default_factory=lambda: parse_mix(DEFAULT_MIX, set(default_kinds()))
    )
    max_duration_s: float = 600.0  # hard bound, whatever runs beside the load
    connect_timeout_s: float = 2.0
    max_connections: int = 512
    seed: int = 1
    request_id_prefix: str = "drill"

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"only plain http://host:port URLs are supported: {self.url!r}")
        if not 0 < self.rate <= 5000:
            raise ValueError(f"rate must be in (0, 5000] requests/s: {self.rate}")
        if self.duration_s <= 0 or self.max_duration_s < self.duration_s:
            raise ValueError("need 0 < duration <= max duration")
        unknown = set(self.mix) - set(self.kinds)
        if unknown:
            raise ValueError(f"mix names unknown kinds: {sorted(unknown)}")

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    @property
    def host_header(self) -> str:
        return urlsplit(self.url).netloc


class LoadGenerator:
    def __init__(self, config: LoadConfig, timeline: Timeline) -> None:
        self.config = config
        self.timeline = timeline
        self.results: list[RequestResult] = []
        self.send_lags_s: list[float] = []
        self.send_window_s = 0.0  # due time of the last request sent, after the start
        self._idle: deque[http.Connection] = deque()
        self._slots = asyncio.Semaphore(config.max_connections)
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: dict[int, tuple[str, float]] = {}  # sent, result not recorded yet
        self._rng = random.Random(config.seed)  # noqa: S311 - a workload, not a secret
        names = [n for n, w in config.mix.items() if w > 0]
        self._names = names
        self._weights = [config.mix[n] for n in names]

    async def run(self, keep_going: Callable[[], bool] = lambda: False) -> list[RequestResult]:
        """Send requests until duration_s has passed and keep_going() is false (bounded)."""
        cfg = self.config
        start = self.timeline.now()
        n = 0
        while True:
            due = start + n / cfg.rate
            elapsed = due - start
            if elapsed >= cfg.max_duration_s or (elapsed >= cfg.duration_s and not keep_going()):
                break
            delay = due - self.timeline.now()
            await asyncio.sleep(max(0.0, delay))
            self.send_lags_s.append(max(0.0, -delay))
            kind = cfg.kinds[self._rng.choices(self._names, self._weights)[0]]
            self._pending[n] = (kind.name, due)
            task = asyncio.create_task(self._one(n, kind, due))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            n += 1
            self.send_window_s = elapsed
        if self._tasks:
            longest = max(k.timeout_s for k in cfg.kinds.values()) + cfg.connect_timeout_s + 5
            await asyncio.wait(list(self._tasks), timeout=longest)
        leftover = list(self._tasks)  # only if a deadline misbehaved; still counted below
        for task in leftover:
            task.cancel()
        await asyncio.gather(*leftover, return_exceptions=True)
        for n, (name, due) in sorted(self._pending.items()):
            self.results.append(
                RequestResult(
                    n, name, round(due, 4), self.timeline.now() - due,
                    error=ErrorKind.TIMEOUT, detail="unfinished_at_end",
                )
            )  # fmt: skip
        self._pending.clear()
        while self._idle:
            self._idle.popleft().close()
        return self.results

    async def _checkout(self) -> tuple[http.Connection, bool]:
        while self._idle:
            conn = self._idle.popleft()
            if conn.reusable():
                return conn, True
            conn.close()
        conn = await http.connect(self.config.host, self.config.port, self.config.connect_timeout_s)
        return conn, False

    async def _one(self, n: int, kind: RequestKind, due: float) -> None:
        cfg = self.config
        data = kind.render(n, cfg.host_header, f"{cfg.request_id_prefix}-{n}")
        conn: http.Connection | None = None
        reused = False
        status: int | None = None
        failure: Failure | None = None
        server = ""
        version = ""
        async with self._slots:
            try:
                conn, reused = await self._checkout()
                response = await http.request(conn, data, kind.method, kind.timeout_s)
                status = response.status
                server = response.headers.get(SERVER_HEADER, "")
                version = response.headers.get(VERSION_HEADER, "")
                if response.keep_alive:
                    self._idle.append(conn)
                else:
                    conn.close()
            except Exception as exc:  # classified and counted, never swallowed
                failure = classify(exc)
                if conn is not None:
                    conn.close()
        self._pending.pop(n, None)
        self.results.append(
            RequestResult(
                index=n,
                kind=kind.name,
                due_s=round(due, 4),
                latency_s=self.timeline.now() - due,
                status=status,
                error=failure.kind if failure else None,
                detail=failure.detail if failure else "",
                server=server,
                version=version,
                reused=reused,
            )
        )


Beside = Callable[[Timeline], Coroutine[Any, Any, list[str]]]
"""An action run beside the load (a rollout); returns problems, empty when it went well."""


@dataclass
class DrillOutcome:
    summary: Summary
    results: list[RequestResult]
    problems: list[str]  # from the action beside the load


async def run_drill(
    config: LoadConfig,
    beside: Beside | None = None,
    *,
    warmup_s: float = 3.0,
    settle_s: float = 3.0,
    timeline: Timeline | None = None,
) -> DrillOutcome:
    """Run the load; after warmup_s run `beside`; keep the load going until it has finished
    plus settle_s, and for at least config.duration_s in all (never past max_duration_s)."""
    timeline = timeline or Timeline()
    timeline.restart()
    beside_done = asyncio.Event()
    generator = LoadGenerator(config, timeline)
    load = asyncio.create_task(generator.run(keep_going=lambda: not beside_done.is_set()))
    problems: list[str] = []
    try:
        if beside is not None:
            await asyncio.sleep(warmup_s)
            timeline.record("action_started")
            budget = max(1.0, config.max_duration_s - timeline.now() - settle_s)
            try:
                async with asyncio.timeout(budget):
                    problems.extend(await beside(timeline))
            except TimeoutError:
                problems.append(f"the action beside the load did not finish within {budget:.0f} s")
            except Exception as exc:  # reported as a problem; the load's results still count
                problems.append(f"the action beside the load failed: {type(exc).__name__}: {exc}")
            timeline.record("action_finished", problems=len(problems))
            await asyncio.sleep(settle_s)
    finally:
        beside_done.set()
        results = await load
    summary = summarize(
        results,
        duration_s=generator.send_window_s + 1 / config.rate,
        target_rate=config.rate,
        events=timeline.events,
        send_lags_s=generator.send_lags_s,
        started_at=timeline.origin_wall,
    )
    return DrillOutcome(summary=summary, results=results, problems=problems)
