"""The load generator against an in-process server that misbehaves on purpose."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from tools.drill.load import (
    DEFAULT_MIX,
    LoadConfig,
    RequestKind,
    default_kinds,
    parse_mix,
    run_drill,
)
from tools.drill.results import Timeline


def test_parse_mix() -> None:
    assert parse_mix("fast=70, items=30", {"fast", "items"}) == {"fast": 70, "items": 30}
    assert set(parse_mix(DEFAULT_MIX, set(default_kinds()))) == set(default_kinds())
    for bad, message in [
        ("fast", "name=weight"),
        ("fast=x", "name=weight"),
        ("slow=1", "unknown mix entry"),
        ("fast=0", "at least one"),
        ("", "at least one"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_mix(bad, {"fast"})


def test_default_kinds_cover_fast_database_and_long_requests() -> None:
    kinds = default_kinds(long_task_seconds=4)
    assert kinds["long"].path == "/api/long-task?seconds=4"
    assert kinds["long"].timeout_s > 4
    assert kinds["items_write"].method == "POST"
    raw = kinds["items_write"].render(7, "h:1", "drill-7")
    assert b"X-Request-ID: drill-7" in raw
    assert b'"name": "drill-7"' in raw


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"url": "https://127.0.0.1:1"}, "plain http"),
        ({"rate": 0}, "rate"),
        ({"duration_s": 10, "max_duration_s": 5}, "duration"),
        ({"mix": {"nope": 1}}, "unknown kinds"),
    ],
)
def test_load_config_validation(changes: dict[str, object], message: str) -> None:
    base: dict[str, object] = {"url": "http://127.0.0.1:1", "rate": 10, "duration_s": 1}
    with pytest.raises(ValueError, match=message):
        LoadConfig(**(base | changes))  # type: ignore[arg-type]


class Misbehaving:
    """/ok: keep-alive 200; /close: 200 + Connection: close; /hangup: close without answer;
    /slow: never answers in time."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: Counter[str] = Counter()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                self.requests[path] += 1
                if path == "/hangup":
                    break
                if path == "/slow":
                    await asyncio.sleep(1)
                    break
                close = path == "/close"
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\nok"
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        async with server:
            yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"


def kinds() -> dict[str, RequestKind]:
    return {
        name: RequestKind(name, "GET", f"/{name}", timeout_s=0.3 if name == "slow" else 2)
        for name in ("ok", "close", "hangup", "slow")
    }


def test_every_request_is_counted_once_with_its_reason() -> None:
    async def scenario() -> None:
        server = Misbehaving()
        async with server.serving() as url:
            config = LoadConfig(
                url=url,
                rate=200,
                duration_s=0.5,
                kinds=kinds(),
                mix={"ok": 6, "close": 2, "hangup": 1, "slow": 1},
            )
            outcome = await run_drill(config)
        s = outcome.summary
        by_kind = Counter(r.kind for r in outcome.results)
        assert s.sent == 100
        assert sorted(r.index for r in outcome.results) == list(range(100))
        assert s.ok == by_kind["ok"] + by_kind["close"]  # Connection: close is not an error
        assert s.errors["reset"] == by_kind["hangup"]
        assert s.errors["timeout"] == by_kind["slow"]
        assert s.failed == by_kind["hangup"] + by_kind["slow"]
        details: Counter[str] = Counter()
        for key, count in s.error_details.items():
            details[key.removesuffix(" (reused conn)")] += count
        assert details == {
            "reset/closed_before_response": by_kind["hangup"],
            "timeout/response": by_kind["slow"],
        }
        assert any(key.endswith("(reused conn)") for key in s.error_details)
        assert any(r.reused for r in outcome.results)
        assert server.connections < s.sent  # kept-alive connections were reused

    asyncio.run(scenario())


def test_load_lasts_while_the_action_beside_it_runs() -> None:
    async def scenario() -> None:
        server = Misbehaving()
        timeline = Timeline()

        async def rollout(t: Timeline) -> list[str]:
            t.record("replica_ready", "r9")
            await asyncio.sleep(0.6)
            return ["r9 exited with code 1"]

        async with server.serving() as url:
            config = LoadConfig(url=url, rate=50, duration_s=0.2, kinds=kinds(), mix={"ok": 1})
            outcome = await run_drill(
                config, rollout, warmup_s=0.1, settle_s=0.1, timeline=timeline
            )
        assert outcome.problems == ["r9 exited with code 1"]
        assert outcome.summary.sent >= 40  # 0.1 + 0.6 + 0.1 s at 50/s, not just 0.2 s
        names = [e.name for e in outcome.summary.events]
        assert names == ["action_started", "replica_ready", "action_finished"]

    asyncio.run(scenario())


def test_an_action_that_crashes_is_a_problem_not_a_lost_run() -> None:
    async def scenario() -> None:
        server = Misbehaving()

        async def broken(_: Timeline) -> list[str]:
            raise RuntimeError("haproxy went away")

        async with server.serving() as url:
            config = LoadConfig(url=url, rate=50, duration_s=0.2, kinds=kinds(), mix={"ok": 1})
            outcome = await run_drill(config, broken, warmup_s=0.05, settle_s=0.05)
        assert outcome.problems == [
            "the action beside the load failed: RuntimeError: haproxy went away"
        ]
        assert outcome.summary.sent == 10
        assert outcome.summary.failed == 0

    asyncio.run(scenario())


def test_max_duration_bounds_an_endless_action() -> None:
    async def scenario() -> None:
        server = Misbehaving()

        async def endless(_: Timeline) -> list[str]:
            await asyncio.sleep(60)
            return []

        async with server.serving() as url:
            config = LoadConfig(
                url=url, rate=20, duration_s=0.2, max_duration_s=0.6, kinds=kinds(), mix={"ok": 1}
            )
            outcome = await run_drill(config, endless, warmup_s=0.05, settle_s=0.05)
        assert outcome.summary.sent <= 13
        assert "did not finish" in outcome.problems[0]

    asyncio.run(scenario())
