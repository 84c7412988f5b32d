"""Logging: JSON lines (or readable text lines, LOG_FORMAT) with the correlation id; the SDK's per-turn
App ID notice is dropped."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from services.logging_context import (
    SDK_TOKEN_CLIENT_LOGGER,
    JsonFormatter,
    TextFormatter,
    correlation_scope,
    logging_configured,
    resolve_log_format,
)


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """The app's logging set-up writing into a string; the test process's own set-up restored after."""
    with logging_configured("INFO") as handler:
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        yield stream


def test_json_lines_carry_the_correlation_id_and_the_sdk_notice_is_dropped(app_log: io.StringIO) -> None:
    sdk = logging.getLogger(SDK_TOKEN_CLIENT_LOGGER)
    with correlation_scope("abc123"):
        sdk.warning("App ID is not provided. Some operations may not work without an App ID.")
        sdk.warning("something else the SDK says")
        logging.getLogger("cspbot").info("turn done")
    lines = [json.loads(line) for line in app_log.getvalue().splitlines()]
    assert [line["message"] for line in lines] == ["something else the SDK says", "turn done"]
    assert all(line["correlation_id"] == "abc123" for line in lines)


def test_a_line_is_one_json_object_whatever_the_message_holds(app_log: io.StringIO) -> None:
    """The formatter writes JSON by hand (for speed): quotes, new lines, non-ASCII text and a traceback
    must still come back exactly, on one line."""
    awkward = 'Zoë said "hi"\\n\tthen\nleft — 100%'
    log = logging.getLogger("cspbot")
    log.info("%s", awkward)
    try:
        raise ValueError('bad\n"value"')
    except ValueError:
        log.exception("failed for %s", "Åsa")
    lines = app_log.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["message"] == awkward
    assert set(first) == {"time", "level", "logger", "correlation_id", "message"}
    assert first["level"] == "INFO" and first["logger"] == "cspbot" and first["correlation_id"] == "-"
    assert second["message"] == "failed for Åsa"
    assert second["exception"].startswith("Traceback") and 'ValueError: bad\n"value"' in second["exception"]


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    """The app's logging set-up with LOG_FORMAT=text, writing into a string."""
    with logging_configured("INFO", "text") as handler:
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        yield stream


def test_text_lines_are_one_readable_line_per_event_with_level_message_and_correlation_id(
    text_log: io.StringIO,
) -> None:
    log = logging.getLogger("cspbot")
    with correlation_scope("5e0cbe67a1b2c3d4"):
        log.info("catalog synced: %d products", 38)
        log.warning("Partner Center GET /v1/customers -> 429 (attempt 1)")
    log.info("outside any turn")
    lines = text_log.getvalue().splitlines()
    assert len(lines) == 3
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO  catalog synced: 38 products \[corr 5e0cbe67a1b2c3d4\]", lines[0])
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d WARNING Partner Center GET /v1/customers -> 429 \(attempt 1\) \[corr 5e0cbe67a1b2c3d4\]",
        lines[1],
    )
    assert re.fullmatch(r"\d\d:\d\d:\d\d INFO  outside any turn", lines[2])
    assert not any(line.lstrip().startswith("{") for line in lines)


def test_text_continuation_lines_and_tracebacks_are_indented_under_their_event(text_log: io.StringIO) -> None:
    log = logging.getLogger("cspbot")
    try:
        raise ValueError("bad value")
    except ValueError:
        with correlation_scope("abc123"):
            log.exception("failed for %s\nsecond line", "Åsa")
    first, *rest = text_log.getvalue().splitlines()
    assert first.endswith("ERROR failed for Åsa")
    assert rest[0] == "    second line [corr abc123]"
    assert rest[1] == "    Traceback (most recent call last):"
    assert rest[-1] == "    ValueError: bad value"
    assert all(line.startswith("    ") for line in rest)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_is_text_at_a_terminal_and_json_elsewhere() -> None:
    assert resolve_log_format("auto", _Terminal()) == "text"
    assert resolve_log_format("auto", io.StringIO()) == "json"
    closed = io.StringIO()
    closed.close()  # isatty() raises on a closed stream
    assert resolve_log_format("auto", closed) == "json"
    assert resolve_log_format("json", _Terminal()) == "json"
    assert resolve_log_format("text", io.StringIO()) == "text"


@pytest.mark.parametrize(("log_format", "formatter"), [("text", TextFormatter), ("json", JsonFormatter)])
def test_configure_logging_installs_the_formatter_the_format_names(log_format: str, formatter: type) -> None:
    with logging_configured("INFO", log_format) as handler:
        assert type(handler.formatter) is formatter
