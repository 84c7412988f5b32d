"""Values that come from outside — a card's payload, a typed word — read once into bounded, typed
values. Every id, number and token a card sends back goes through here before it reaches a query.

A card's data is whatever the client sent: a number beyond the database's integer range makes
PostgreSQL (and, beyond 64 bits, SQLite) fail the query, a float such as 1e400 arrives as infinity,
and `str.isdigit` accepts digits `int()` cannot read ("²"). An id that cannot be one of ours is
refused with the caller's "not one of your organisation's" message — to the person, exactly like
an id of another organisation; the services still check that a well-formed id is the caller's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from services.errors import InvalidInput, NotFound

MAX_ROW_ID = 2**31 - 1  # the database's integer primary keys (PostgreSQL `integer`)
MAX_PAGE = 10_000
_WHOLE = re.compile(r"[+-]?[0-9]{1,12}")


def _whole(value: Any) -> int | None:
    """An int, ASCII digits (an optional sign, surrounding spaces) or a float with no fraction; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() and abs(value) < 1e12 else None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    return None


def row_id(value: Any, not_found: str) -> int:
    """A database row id from a payload (1 to 2^31-1), or `NotFound(not_found)`."""
    number = None if isinstance(value, float) else _whole(value)
    if number is None or not 1 <= number <= MAX_ROW_ID:
        raise NotFound(not_found)
    return number


def row_ids(values: Iterable[Any], not_found: str) -> list[int]:
    """Several row ids (a multi-select), in order, without repeats; any bad one refuses them all."""
    return list(dict.fromkeys(row_id(value, not_found) for value in values))


def whole_number(
    value: Any, *, minimum: int, maximum: int, field: str, not_a_number: str, out_of_range: str | None = None
) -> int:
    """A count entered on a card (seats, licences) between `minimum` and `maximum`, or
    `InvalidInput(field=field)` with `not_a_number` (or `out_of_range` when it is a number)."""
    number = _whole(value)
    if number is None:
        raise InvalidInput(not_a_number, field=field)
    if not minimum <= number <= maximum:
        raise InvalidInput(out_of_range or not_a_number, field=field)
    return number


def page_number(value: Any, default: int) -> int:
    """A page a card asks for (0 to 10,000); anything else is `default` (the list shows its bounds)."""
    number = _whole(value)
    return number if number is not None and 0 <= number <= MAX_PAGE else default


def token(value: Any, *, max_length: int, out_of_date: str, required: bool = True) -> str:
    """An e-tag or key the card carries back: a string of at most `max_length` characters (not
    empty when `required`), or `InvalidInput(out_of_date)`."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > max_length or (required and not text):
        raise InvalidInput(out_of_date)
    return text
