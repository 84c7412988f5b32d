"""Logging: JSON lines with the correlation id; the SDK's per-turn App ID notice is dropped."""

from __future__ import annotations

import io
import json
import logging

from services.logging_context import SDK_TOKEN_CLIENT_LOGGER, configure_logging, correlation_scope


def test_json_lines_carry_the_correlation_id_and_the_sdk_notice_is_dropped() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("INFO")
        stream = io.StringIO()
        root.handlers[0].setStream(stream)  # type: ignore[attr-defined]
        sdk = logging.getLogger(SDK_TOKEN_CLIENT_LOGGER)
        with correlation_scope("abc123"):
            sdk.warning("App ID is not provided. Some operations may not work without an App ID.")
            sdk.warning("something else the SDK says")
            logging.getLogger("cspbot").info("turn done")
        lines = [json.loads(line) for line in stream.getvalue().splitlines()]
        assert [line["message"] for line in lines] == ["something else the SDK says", "turn done"]
        assert all(line["correlation_id"] == "abc123" for line in lines)
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
