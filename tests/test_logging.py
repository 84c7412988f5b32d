"""Logging: JSON lines with the correlation id; the SDK's per-turn App ID notice is dropped."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from services.logging_context import SDK_TOKEN_CLIENT_LOGGER, correlation_scope, logging_configured


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
