"""Session-wide throwaway servers, started only when a test asks for them. Tests that
stop one (outage drills) start it again before they finish."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import missing
from tools.testbed.otlp_receiver import OtlpReceiver
from tools.testbed.servers import PostgresServer, RedisServer
from tools.testbed.support import MissingPrerequisite


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    server.migrate()  # as a deploy does before the app serves: the app runs no DDL
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """A throwaway server whose program is missing: fail under CI=true, else skip."""
    try:
        return (yield)
    except MissingPrerequisite as exc:
        missing(str(exc))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except MissingPrerequisite as exc:
        missing(str(exc))
