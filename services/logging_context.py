"""Logging with a correlation id carried through each turn, job and CLI command: JSON lines for log
shippers, or one readable line per event for a person at a terminal (`LOG_FORMAT`)."""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from json.encoder import encode_basestring as _quote  # a JSON string literal (C speed-up)

_correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="-")


def new_correlation_id() -> str:
    return uuid.uuid4().hex[:16]


def current_correlation_id() -> str:
    return _correlation_id.get()


@contextmanager
def correlation_scope(correlation_id: str | None = None) -> Iterator[str]:
    """Everything logged inside carries this id (a fresh one unless given)."""
    value = correlation_id or new_correlation_id()
    token = _correlation_id.set(value)
    try:
        yield value
    finally:
        _correlation_id.reset(token)


class _CorrelationFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.correlation_id = _correlation_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: easy to ship, easy to grep by correlation id.

    Made for a line per Partner Center call: the time text is made once per second, and
    the line is put together from JSON string literals (`json.dumps` builds an encoder per call, which
    costs more than the rest of the line)."""

    def __init__(self) -> None:
        super().__init__()
        self._second_and_text: tuple[int, str] = (-1, "")

    def _time(self, created: float) -> str:
        second = int(created)
        cached_second, text = self._second_and_text  # one tuple: safe to read while another thread renews it
        if second != cached_second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S%z", self.converter(second))
            self._second_and_text = (second, text)
        return text

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f'{{"time": {_quote(self._time(record.created))}, "level": {_quote(record.levelname)}, '
            f'"logger": {_quote(record.name)}, "correlation_id": {_quote(getattr(record, "correlation_id", "-"))}, '
            f'"message": {_quote(record.getMessage())}'
        )
        if record.exc_info:
            line += f', "exception": {_quote(self.formatException(record.exc_info))}'
        return line + "}"


class TextFormatter(logging.Formatter):
    """One readable line per event: `19:46:45 INFO  catalog synced: 38 products [corr 5e0cbe67a1b2c3d4]`.

    The correlation id is the one the JSON lines carry, so a line seen in a terminal can be found in
    shipped logs; lines logged outside any turn, job or command have none. Continuation lines (a
    multi-line message, a traceback) are indented under their event."""

    def format(self, record: logging.LogRecord) -> str:
        clock = time.strftime("%H:%M:%S", self.converter(record.created))
        line = f"{clock} {record.levelname:<5} {record.getMessage()}"
        correlation_id = getattr(record, "correlation_id", "-")
        if correlation_id != "-":
            line += f" [corr {correlation_id}]"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line.replace("\n", "\n    ")


def resolve_log_format(log_format: str, stream: object = None) -> str:
    """`text` or `json` for a `LOG_FORMAT` value: `auto` is text when `stream` (default stderr) is a
    terminal — a person is reading — and JSON otherwise (a service manager or a log shipper)."""
    if log_format != "auto":
        return log_format
    isatty = getattr(sys.stderr if stream is None else stream, "isatty", None)
    try:
        return "text" if isatty is not None and isatty() else "json"
    except ValueError:  # a closed stream
        return "json"


class _DropRepeatedSdkNotice(logging.Filter):
    """The SDK warns "App ID is not provided" on every turn of the unauthenticated local mode; the
    bot already says so loudly once at start-up, and a line per turn buries everything else."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith("App ID is not provided."))


SDK_TOKEN_CLIENT_LOGGER = "microsoft_agents.hosting.core.connector.client.user_token_client"


def configure_logging(level: str, log_format: str = "json") -> None:
    """Log at `level` to stderr, as JSON lines or readable text (`log_format`: json, text or auto)."""
    handler = logging.StreamHandler()
    text = resolve_log_format(log_format, handler.stream) == "text"
    handler.setFormatter(TextFormatter() if text else JsonFormatter())
    handler.addFilter(_CorrelationFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Neither format names a source line, thread or process: skip collecting them for every record
    # (the "Optimization" section of Python's logging HOWTO; `_srcfile` alone saves a frame walk).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root.setLevel(level)
    # The SDK logs full activities at INFO; keep them out of our logs unless debugging.
    logging.getLogger("microsoft_agents").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # Alembic, imported only when a database needs migrating, announces each of its plugins at INFO.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    token_client_log = logging.getLogger(SDK_TOKEN_CLIENT_LOGGER)
    if not any(isinstance(existing, _DropRepeatedSdkNotice) for existing in token_client_log.filters):
        token_client_log.addFilter(_DropRepeatedSdkNotice())
    # aiosqlite logs every statement's parameters at DEBUG: a password waiting for its e-mail would
    # be among them. Never below INFO.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLevelName(level)))


_RECORD_FLAGS = ("_srcfile", "logThreads", "logProcesses", "logMultiprocessing")


@contextmanager
def logging_configured(level: str, log_format: str = "json") -> Iterator[logging.Handler]:
    """`configure_logging(level, log_format)` for the span of a block (the CLI run inside another program, a test,
    a benchmark), then the earlier set-up back; yields the app's handler."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_flags = {name: getattr(logging, name) for name in _RECORD_FLAGS}
    try:
        configure_logging(level, log_format)
        yield root.handlers[0]
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)  # setLevel, not `.level =`: it also clears the loggers' level caches
        for name, value in saved_flags.items():
            setattr(logging, name, value)
