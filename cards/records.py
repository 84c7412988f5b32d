"""A task's card once it no longer takes clicks: the same card, read-only, saying what happened.

Pure functions over card dicts: `stamp` marks every submit of a card with the card's id (so a
click says which card it came from), `clicked_action` finds the button a submit came from, and
`build_record` freezes a card — inputs become their submitted values, buttons go — with one line
of outcome ("✓ Add 2 seats — Alex Wilber, Dec 6, 2026, 2:03 PM UTC").
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from cards.base import ERROR_ID, Card, text
from services.i18n import _

CARD_ID_KEY = "card_id"
INPUT_TYPES = frozenset({"Input.Text", "Input.Number", "Input.Date", "Input.Time", "Input.ChoiceSet", "Input.Toggle"})
SUBMIT_TYPES = frozenset({"Action.Submit", "Action.Execute"})


def _walk_actions(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") in SUBMIT_TYPES:
            found.append(node)
        for value in node.values():
            found.extend(_walk_actions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_walk_actions(item))
    return found


def stamp(card: Mapping[str, Any], card_id: str) -> Card:
    """A copy of `card` whose every submit carries `card_id` (one pass over the card's JSON: a card is
    dicts, lists and scalars, so `copy.deepcopy` and its memo would only cost time — ~3 ms a large card)."""

    def stamped(node: Any) -> Any:
        if isinstance(node, dict):
            copied = {key: stamped(value) for key, value in node.items()}
            if copied.get("type") == "Action.Submit":
                copied["data"] = {**(copied.get("data") or {}), CARD_ID_KEY: card_id}
            return copied
        if isinstance(node, list):
            return [stamped(item) for item in node]
        return node

    result: Card = stamped(dict(card))
    return result


def clicked_action(card: Mapping[str, Any], submitted: Mapping[str, Any]) -> dict[str, Any] | None:
    """The submit button whose data the submitted value carries (the most specific match)."""
    best: dict[str, Any] | None = None
    best_size = -1
    for action in _walk_actions(card):
        data = {key: value for key, value in (action.get("data") or {}).items() if key != CARD_ID_KEY}
        if all(submitted.get(key) == value for key, value in data.items()) and len(data) > best_size:
            best, best_size = action, len(data)
    return best


def _shown_value(element: Mapping[str, Any], submitted: Mapping[str, Any]) -> str:
    raw = submitted.get(element.get("id", ""), element.get("value", ""))
    kind = element.get("type")
    if kind == "Input.Toggle":
        on = str(raw) == str(element.get("valueOn", "true"))
        return "yes" if on else "no"
    value = "" if raw is None else str(raw)
    if kind == "Input.ChoiceSet":
        titles = {str(choice.get("value")): str(choice.get("title", "")) for choice in element.get("choices") or []}
        picked = value.split(",") if element.get("isMultiSelect") else [value]
        return ", ".join(titles.get(item, item) for item in picked if item)
    return value


def _frozen(element: Mapping[str, Any], submitted: Mapping[str, Any], inputs: bool = True) -> dict[str, Any] | None:
    """The element without anything clickable; an input becomes "label: value" (None when empty, and
    when the button clicked sent no inputs)."""
    kind = element.get("type")
    if (
        kind == "ActionSet"
        or element.get("isVisible") is False
        or element.get("id") == ERROR_ID  # an error was about an earlier try of what the record shows done
        or (kind in INPUT_TYPES and not inputs)
    ):
        return None
    if kind == "Input.Toggle":
        ticked = _shown_value(element, submitted) == "yes"
        return text(("✓ " if ticked else _("Not ticked: ")) + str(element.get("title") or element.get("label") or ""))
    if kind in INPUT_TYPES:
        value = _shown_value(element, submitted)
        label = str(element.get("label") or element.get("title") or "").rstrip(" *")
        if not value or not label:
            return None  # nothing entered, or a search box (what was looked for is not what was done)
        return text(f"**{label}**: {value}")
    frozen = {key: value for key, value in element.items() if key not in ("selectAction", "actions")}
    for key in ("items", "columns"):
        if isinstance(element.get(key), list):
            frozen[key] = [kept for child in element[key] if (kept := _frozen(child, submitted, inputs)) is not None]
            if element[key] and not frozen[key]:
                return None  # it held only buttons and inputs left out: no empty space in the record
    return frozen


def build_record(card: Mapping[str, Any], submitted: Mapping[str, Any], outcome: str) -> Card:
    """`card` as a read-only record: its text as it was, inputs as submitted, no buttons, and the
    outcome last. A button that sends no inputs (`associatedInputs: none`) leaves them out."""
    clicked = clicked_action(card, submitted) if submitted else None
    inputs = clicked is None or clicked.get("associatedInputs") != "none"
    body = [kept for element in card.get("body") or [] if (kept := _frozen(element, submitted, inputs)) is not None]
    body.append({**text(outcome, weight="Bolder", color="Good"), "separator": True, "spacing": "Medium"})
    record: Card = {key: copy.deepcopy(value) for key, value in card.items() if key not in ("body", "actions")}
    record["body"] = body
    return record
