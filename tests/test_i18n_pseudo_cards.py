"""Every card builder in `cards/`, rendered in the pseudo-locale: any visible text with a Latin
letter that neither came through `_()`/`ngettext` (pseudo text is accented, `[Ŧḗẋŧ ···]`, no
ASCII letters) nor is data the card was given fails — so a string that escaped the catalogs is found. The lengthened
cards must still be valid Adaptive Cards under Teams' size limit.

Builders are found by introspection (every public `build_*` function of every `cards` module), and
their inputs are made from their type hints: data strings are Greek words (no Latin letters, so
they cannot pass for untranslated text), and the few strings a card interprets (a currency, a
status, a billing cycle, a country) are real values, recorded as data. Dates and amounts are
formatted for Greek (`el_GR`): month names and separators without Latin letters. A builder whose
inputs cannot be made from its hints gets them in `OVERRIDES` (the test says which)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import inspect
import pkgutil
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

import cards
from services.formatting import reading
from services.i18n import pseudo_locale
from tests.cardcheck import assert_valid_card

LOCALE = "el_GR"  # no Latin letters in its dates, numbers or country names
TIMEZONE = "UTC"
# Strings a card interprets: real values, shown as data where a card shows them.
SEMANTIC: dict[str, str] = {
    "currency": "USD",
    "billing_cycle": "monthly",
    "billing": "monthly",
    "term_duration": "P1Y",
    "term": "P1Y",
    "status": "active",
    "state": "",
    "country": "NO",
    "usage_location": "NO",
    "country_code": "NO",
    "locale": "nb-NO",
    "timezone": "Europe/Oslo",
    "url": "https://example.com/data",
    "relationship_url": "https://example.com/relationship",
    "email": "data@example.com",
    "sent_to": "data@example.com",
    "upn": "data@example.com",
    "user_principal_name": "data@example.com",
    "domain": "example.com",
    "month": "2026-09",
    "effective": "2026-12-01",
    "effective_from": "2026-12-01",
}
# Text fields of Adaptive Card elements a person reads.
VISIBLE = ("text", "title", "value", "placeholder", "label", "errorMessage", "altText", "fallbackText")
# Elements whose `value` is what an input holds (data the person typed or we prefilled), not a text.
INPUTS = ("Input.Text", "Input.ChoiceSet", "Input.Toggle", "Input.Number", "Input.Date", "Input.Time")
LATIN = re.compile(r"[A-Za-z]")
CODE = re.compile(r"`[^`]*`")
# Codes and names that read the same in every language: an offer id, a domain.
DATA_WORD = re.compile(r"\d|\.[a-z]{2,}\b")
# The bot's basic commands, typed as they are whatever the reader's language (the help lists them).
TYPED = {"menu", "help", "cancel", "language"}
GREEK = "αβγδεζηθικλμνξοπρστυφχψω"


class Data:
    """The data one rendering was given: every string, so a check can tell data from text."""

    def __init__(self, variant: int = 0) -> None:
        self.strings: set[str] = {TIMEZONE, "UTC"}
        self.variant = variant
        self._next = 0

    def word(self) -> str:
        self._next += 1
        n, letters = self._next, []
        while True:
            letters.append(GREEK[n % len(GREEK)])
            n //= len(GREEK)
            if not n:
                break
        return "Δ" + "".join(letters)

    def semantic(self, name: str) -> str | None:
        lowered = name.lower()
        for key, value in SEMANTIC.items():
            if lowered == key or lowered.endswith("_" + key):
                self.strings.add(value)
                return value
        if lowered.endswith(("_id", "_key", "key", "verb", "command", "etag", "token", "sku")) or lowered == "id":
            value = f"id{self._next}x"
            self._next += 1
            self.strings.add(value)
            return value
        return None


def _make(hint: Any, name: str, data: Data, *, full: bool, depth: int = 0) -> Any:
    """A value of type `hint` for a parameter or field called `name`."""
    if depth > 6:
        raise TypeError(f"{name}: nested too deep")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any or hint is object:
        return data.word()
    if origin in (typing.Union, types.UnionType):
        present = [arg for arg in args if arg is not type(None)]
        if (not full or depth > 3) and len(present) < len(args):
            return None
        return _make(present[0], name, data, full=full, depth=depth + 1)
    if origin is typing.Literal:
        return args[0]
    if hint is str:
        semantic = data.semantic(name)
        return semantic if semantic is not None else data.word()
    if hint is bool:
        return full
    if hint is int:
        return 3
    if hint is float:
        return 2.5
    if hint is Decimal:
        return Decimal("12.5")
    if hint is datetime:
        return datetime(2027, 1, 5, 14, 3, tzinfo=UTC)
    if hint is date:
        return date(2027, 1, 5)
    if hint is timedelta:
        return timedelta(days=3)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return members[data.variant % len(members)]
    if name == "facts" and depth > 0:
        return _notice_facts(data)
    if origin in (list, Sequence, typing.Sequence, tuple, frozenset, set, collections_abc("Iterable")):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return tuple(_make(arg, name, data, full=full, depth=depth + 1) for arg in args)
        item = args[0] if args else str
        size = 0 if depth > 3 else 2 if full else 1
        items = [_make(item, name, data, full=full, depth=depth + 1) for _index in range(size)]
        return tuple(items) if origin is tuple else frozenset(items) if origin in (frozenset, set) else items
    if origin in (dict, Mapping, typing.Mapping):
        key_hint, value_hint = args or (str, Any)
        return {
            _make(key_hint, name, data, full=full, depth=depth + 1): _make(
                value_hint, name, data, full=full, depth=depth + 1
            )
            for _index in range(2 if full else 1)
        }
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint, localns={**_namespace(), **vars(sys.modules[hint.__module__])})
        values = {}
        for field in dataclasses.fields(hint):
            if not field.init:
                continue
            has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
            if has_default and not full:
                continue
            values[field.name] = _make(hints[field.name], field.name, data, full=full, depth=depth + 1)
        return hint(**values)
    raise TypeError(f"{name}: cannot make a {hint!r}")


@functools.cache
def _namespace() -> dict[str, Any]:
    """Every class of every `services` module by name: card modules import some of their types
    only for type checking, and their hints name them."""
    import services

    found: dict[str, Any] = {}
    for module_info in pkgutil.walk_packages(services.__path__, "services."):
        try:
            module = importlib.import_module(module_info.name)
        except ImportError:
            continue
        for name, value in vars(module).items():
            if isinstance(value, type) and value.__module__ == module.__name__:
                found.setdefault(name, value)
    return found


def _notice_facts(data: Data) -> dict[str, Any]:
    """What the warning rules record about a subscription (services/warnings/rules.py)."""
    user = {"user_id": data.semantic("user_id"), "name": data.word(), "upn": data.semantic("upn"), "last_sign_in": None}
    return {
        "name": data.word(),
        "quantity": 10,
        "refundable": 2,
        "removable": 2,
        "renewing_quantity": 8,
        "scheduled_quantity": 8,
        "suggested_quantity": 7,
        "assigned": 5,
        "unassigned": 3,
        "idle_seats": 2,
        "idle_days": 30,
        "inactive_count": 3,
        "inactive_users": [user],
        "unassigned_users": [],
        "reducible_at_renewal": 2,
        "next_renewal": "2027-01-05T00:00:00+00:00",
        "closes_at": "2027-01-05T14:03:00+00:00",
        "lock_at": "2027-01-04T14:03:00+00:00",
        "renews_at": "2027-01-05T14:03:00+00:00",
        "renews_on": "2027-01-05",
        "currency": data.semantic("currency"),
        "unit_price": "12.5",
        "renewal_unit_price": "13.5",
        "monthly_price": "12.5",
        "monthly_cost": "125",
        "cost_per_period": "125",
        "cost_per_term": "1500",
        "price_changes": True,
        "term_scheduled": True,
        "billing_cycle": data.semantic("billing_cycle"),
        "term_duration": data.semantic("term_duration"),
    }


def collections_abc(name: str) -> Any:
    import collections.abc

    return getattr(collections.abc, name)


def builders() -> dict[str, Callable[..., dict[str, Any]]]:
    """Every public `build_*` function defined in a `cards` module."""
    found: dict[str, Callable[..., dict[str, Any]]] = {}
    for module_info in pkgutil.iter_modules(cards.__path__):
        module = importlib.import_module(f"cards.{module_info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if name.startswith("build_") and function.__module__ == module.__name__:
                found[f"{module_info.name}.{name}"] = function
    return found


def _arguments(function: Callable[..., Any], data: Data, *, full: bool) -> tuple[list[Any], dict[str, Any]]:
    hints = typing.get_type_hints(function, localns={**_namespace(), **function.__globals__})
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for name, parameter in inspect.signature(function).parameters.items():
        has_default = parameter.default is not inspect.Parameter.empty
        if has_default and not full:
            continue
        value = _make(hints[name], name, data, full=full)
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY:
            keywords[name] = value
        else:
            positional.append(value)
    return positional, keywords


def _texts(node: Any, path: str = "", parent: str = "") -> Iterator[tuple[str, str]]:
    """(where, text) for every visible text of a card (an input's or a choice's `value` is what it
    submits; a fact's is shown)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _texts(item, f"{path}[{index}]", parent)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type", "")
    for key in VISIBLE:
        value = node.get(key)
        if not isinstance(value, str) or (key == "value" and parent != "facts"):
            continue
        if key == "title" and kind == "AdaptiveCard":
            continue
        yield f"{path}.{key}", value
    for key, value in node.items():
        if key in ("data", "msteams", "$schema", "selectAction") and key != "selectAction":
            continue
        if isinstance(value, dict | list):
            yield from _texts(value, f"{path}.{key}", key)


def _untranslated(text: str, data: Data) -> str:
    """What is left of `text` once the data it was given is taken out: pseudo text has no ASCII
    letters, so any left came from a string that did not go through the catalogs (also one filled
    into a translated message's placeholder)."""
    rest = text
    for value in sorted((s for s in data.strings if s), key=len, reverse=True):
        rest = rest.replace(value, " ")
    rest = CODE.sub(" ", rest)  # `menu`: what a person types, as typed
    words = [word for word in rest.split() if not DATA_WORD.search(word) and word.strip("*_`()[],.:;") not in TYPED]
    return " ".join(words)


def _render(function: Callable[..., dict[str, Any]], *, full: bool, variant: int = 0) -> tuple[dict[str, Any], Data]:
    data = Data(variant)
    override = OVERRIDES.get(function.__name__)
    with reading(LOCALE, TIMEZONE), pseudo_locale():
        if override is not None:
            positional, keywords = override(data, full)
        else:
            positional, keywords = _arguments(function, data, full=full)
        return function(*positional, **keywords), data


def _record_card(data: Data, _full: bool) -> tuple[list[Any], dict[str, Any]]:
    from cards.base import card, submit, text

    source = card([text(data.word())], [submit(data.word(), "pick")])
    outcome = data.word()
    return [source, {"verb": "pick"}, outcome], {}


def _overview_card(data: Data, full: bool) -> tuple[list[Any], dict[str, Any]]:
    """The monthly overview's shape (services/warnings/overview.py)."""
    product = {
        "name": data.word(),
        "seats": 10,
        "seats_change": 2,
        "assigned": 7,
        "assigned_change": -1,
        "idle": 3,
        "unassigned": 2,
        "inactive_users": 1,
        "cost_per_month": {data.semantic("currency"): "125.00"},
    }
    renewal = {
        "renews_on": "2027-01-05",
        "name": data.word(),
        "quantity": 10,
        "cost_per_period": "125.00",
        "currency": data.semantic("currency"),
        "billing_cycle": data.semantic("billing_cycle"),
        "renews": full,
    }
    overview = {
        "month": "2026-12",
        "first": not full,
        "products": [product] if full else [],
        "gone": [data.word()] if full else [],
        "total_per_month": {data.semantic("currency"): "125.00"} if full else {},
        "renewals": [renewal, {**renewal, "renews": not full}],
    }
    return [overview], {"organisation": data.word()} if full else {}


def _unassign_confirm_card(data: Data, full: bool) -> tuple[list[Any], dict[str, Any]]:
    from services.warnings.service import NoticeView

    notice = _make(NoticeView, "notice", data, full=full)
    user = {"user_id": data.semantic("user_id"), "name": data.word(), "upn": data.semantic("upn")}
    if full:
        user["last_sign_in"] = "2026-10-01T08:00:00+00:00"
    return [notice, user], {}


# Builders whose inputs are not plain typed data.
OVERRIDES: dict[str, Callable[[Data, bool], tuple[list[Any], dict[str, Any]]]] = {
    "build_record": _record_card,
    "build_overview_card": _overview_card,
    "build_unassign_confirm_card": _unassign_confirm_card,
}

BUILDERS = builders()


def test_every_card_module_builder_is_found() -> None:
    assert len(BUILDERS) >= 60, sorted(BUILDERS)


@pytest.mark.parametrize("variant", [0, 1, 2], ids=["kind-1", "kind-2", "kind-3"])
@pytest.mark.parametrize("full", [True, False], ids=["every-field", "required-only"])
@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_a_card_in_the_pseudo_locale_shows_no_untranslated_text(name: str, full: bool, variant: int) -> None:
    """`variant` picks another member of each enum the inputs hold (a warning's kind, a status)."""
    function = BUILDERS[name]
    try:
        built, data = _render(function, full=full, variant=variant)
    except TypeError as error:
        pytest.fail(f"{name}: cannot make its inputs from its type hints ({error}); add it to OVERRIDES")
    leaks = _leaks(built, data)
    assert not leaks, f"{name}: text not from the catalogs:\n" + "\n".join(leaks)
    assert_valid_card(built)


def _leaks(built: dict[str, Any], data: Data) -> list[str]:
    return [f"{where}: {shown!r}" for where, shown in _texts(built) if LATIN.search(_untranslated(shown, data))]


def test_the_check_finds_text_that_did_not_go_through_the_catalogs() -> None:
    from cards.base import card, facts, submit, text
    from services.i18n import _

    data = Data()
    name = data.word()
    with reading(LOCALE, TIMEZONE), pseudo_locale():
        wrapped = card(
            [text(_("Seats of {name}", name=name)), facts([(_("Term"), "data@example.com")])],
            [submit(_("Cancel"), "drop")],
        )
        data.strings.add("data@example.com")
        assert _leaks(wrapped, data) == []
        for unwrapped in (
            card([text(f"Seats of {name}")]),
            card([facts([("Term", name)])]),
            card([text(_("Seats of {name}", name="Microsoft"))]),  # English data nobody gave
            card([text(_("Menu"))], [submit("Cancel", "drop")]),
        ):
            assert len(_leaks(unwrapped, data)) == 1, unwrapped
