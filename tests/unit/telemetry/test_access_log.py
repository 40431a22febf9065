"""The access log's direct path: taken only when the stock configuration would send the
record to our one JsonLineHandler and nowhere else, and it writes the same line."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest

from service.request import context
from service.telemetry.logs import (
    JsonFormatter,
    JsonLineHandler,
    StructuredLogger,
    direct_writer,
)
from tools.testbed.jsonlines import parse_json_lines

FIELDS = {"method": "GET", "path": "/p", "status_code": 200, "duration_ms": 1.5, "user_agent": "é"}


@pytest.fixture
def stock_logging() -> Iterator[logging.Logger]:
    """A child logger under a parent set up as configure_logging sets up the root: one
    JsonLineHandler with a JsonFormatter. Tests call without_pytest_handlers() first:
    for each test pytest adds its capture handlers to the root and to every
    non-propagating logger, and those would rightly turn the direct path off."""
    parent = logging.getLogger("direct-path-test")
    handler = JsonLineHandler(os.open(os.devnull, os.O_WRONLY))
    handler.setFormatter(JsonFormatter("svc"))
    parent.handlers[:] = [handler]
    parent.propagate = False
    parent.setLevel(logging.INFO)
    child = logging.getLogger("direct-path-test.access")
    yield child
    parent.handlers.clear()
    parent.propagate = True
    child.filters.clear()
    os.close(handler.fd)


def without_pytest_handlers() -> logging.Logger:
    parent = logging.getLogger("direct-path-test")
    parent.handlers[:] = [h for h in parent.handlers if type(h) is JsonLineHandler]
    return parent


def test_stock_configuration_takes_the_direct_path(stock_logging: logging.Logger) -> None:
    without_pytest_handlers()
    handler = direct_writer(stock_logging, logging.INFO)
    assert isinstance(handler, JsonLineHandler)
    assert handler is logging.getLogger("direct-path-test").handlers[0]
    assert direct_writer(stock_logging, logging.DEBUG) is None  # not enabled at info


def test_anything_else_that_would_see_the_record_takes_the_usual_path(
    stock_logging: logging.Logger,
) -> None:
    root = without_pytest_handlers()  # where the handler is, as the root in production
    assert direct_writer(stock_logging, logging.INFO) is root.handlers[0]
    extra = logging.StreamHandler()
    root.addHandler(extra)
    assert direct_writer(stock_logging, logging.INFO) is None  # a second handler
    root.removeHandler(extra)
    stock_logging.addHandler(extra)
    assert direct_writer(stock_logging, logging.INFO) is None  # one on the way up
    stock_logging.removeHandler(extra)

    def keep_all(record: logging.LogRecord) -> bool:
        return True

    stock_logging.addFilter(keep_all)
    assert direct_writer(stock_logging, logging.INFO) is None  # a logger filter
    stock_logging.removeFilter(keep_all)
    handler = root.handlers[0]
    handler.addFilter(keep_all)
    assert direct_writer(stock_logging, logging.INFO) is None  # a handler filter
    handler.removeFilter(keep_all)
    handler.setLevel(logging.ERROR)
    assert direct_writer(stock_logging, logging.INFO) is None  # the handler's level
    assert direct_writer(stock_logging, logging.ERROR) is handler
    handler.setLevel(logging.NOTSET)
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(lambda *a, **k: factory(*a, **k))
    try:
        assert direct_writer(stock_logging, logging.INFO) is None  # a custom record factory
    finally:
        logging.setLogRecordFactory(factory)
    handler.setFormatter(logging.Formatter())
    assert direct_writer(stock_logging, logging.INFO) is None  # not our formatter
    assert direct_writer(stock_logging, logging.INFO) is None


def lines_written(write: Any) -> list[dict[str, Any]]:
    """What `write(handler)` writes through a JsonLineHandler on a pipe."""
    read_fd, write_fd = os.pipe()
    handler = JsonLineHandler(write_fd)
    handler.setFormatter(JsonFormatter("svc"))
    write(handler)
    os.close(write_fd)
    with os.fdopen(read_fd) as reader:
        return parse_json_lines(reader.read())


def test_direct_line_is_the_logging_line() -> None:
    token = context.request_id.set("req-7")
    try:
        direct = lines_written(lambda h: h.write_event("INFO", "request_completed", FIELDS))

        def through_logging(handler: JsonLineHandler) -> None:
            logger = StructuredLogger("direct-path-compare")
            logger.logger.handlers[:] = [handler]
            logger.logger.propagate = False
            logger.logger.setLevel(logging.INFO)
            try:
                logger.info("request_completed", **FIELDS)
            finally:
                logger.logger.handlers.clear()
                logger.logger.propagate = True

        logged = lines_written(through_logging)
    finally:
        context.request_id.reset(token)
    [direct_line], [logged_line] = direct, logged
    assert direct_line.pop("timestamp")[:16] == logged_line.pop("timestamp")[:16]
    assert direct_line == logged_line
    assert direct_line["request_id"] == "req-7" and direct_line["user_agent"] == "é"


def test_write_event_needs_our_formatter() -> None:
    handler = JsonLineHandler(os.open(os.devnull, os.O_WRONLY))
    handler.setFormatter(logging.Formatter())
    with pytest.raises(TypeError):
        handler.write_event("INFO", "request_completed", FIELDS)
    os.close(handler.fd)
