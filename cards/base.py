"""Building blocks shared by every card: the envelope, text, facts and actions."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from services.countries import country_choices, normalise_country
from services.formatting import reader
from services.i18n import N_, _

Card = dict[str, Any]
SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
VERSION = "1.5"
# Every submit carries a verb; the bot routes on it (CONVENTIONS: "Card submits are first-class").
VERB_KEY = "verb"


def card(body: Sequence[Mapping[str, Any]], actions: Sequence[Mapping[str, Any]] = ()) -> Card:
    """The card envelope; full width in Teams so tables and forms stay readable."""
    result: Card = {
        "type": "AdaptiveCard",
        "$schema": SCHEMA_URL,
        "version": VERSION,
        "body": [dict(element) for element in body],
        "msteams": {"width": "Full"},
    }
    if actions:
        result["actions"] = [dict(action) for action in actions]
    return result


def heading(text: str) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "size": "Large", "weight": "Bolder", "wrap": True, "style": "heading"}


def text(value: str, *, subtle: bool = False, weight: str | None = None, color: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "TextBlock", "text": value, "wrap": True}
    if subtle:
        block["isSubtle"] = True
    if weight:
        block["weight"] = weight
    if color:
        block["color"] = color
    return block


# The id of a card's error message: it is about an earlier try, so a card kept as the record of
# what was done (cards/records.py) leaves it out. A card shows one error at a time.
ERROR_ID = "error"


def error_lines(message: str | None) -> list[dict[str, Any]]:
    """What went wrong with the last submit, in bold red; nothing when all is well."""
    if not message:
        return []
    return [{**text(message, color="Attention", weight="Bolder"), "id": ERROR_ID}]


def facts(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": title, "value": value} for title, value in pairs]}


def submit(title: str, verb: str, data: Mapping[str, Any] | None = None, *, style: str | None = None) -> dict[str, Any]:
    payload = {VERB_KEY: verb, **(data or {})}
    action: dict[str, Any] = {"type": "Action.Submit", "title": title, "data": payload}
    if style:
        action["style"] = style
    return action


def command_button(title: str, command: str) -> dict[str, Any]:
    """A button that does what typing `command` does."""
    return submit(title, "command", {"command": command})


def country_choice(
    input_id: str, label: str, value: str, *, required: bool = False, placeholder: str = N_("Choose a country")
) -> dict[str, Any]:
    """A drop-down of every ISO country, named in the reader's language (`Norge`, `Tyskland`),
    submitting its two-letter code. Empty `value`: nothing chosen (the placeholder shows)."""
    element: dict[str, Any] = {
        "type": "Input.ChoiceSet",
        "id": input_id,
        "label": label,
        "style": "compact",
        "placeholder": _(placeholder),
        "choices": [{"title": name, "value": code} for code, name in country_choices(reader().locale)],
    }
    code = normalise_country(value)
    if code:
        element["value"] = code
    if required:
        element["isRequired"] = True
        element["errorMessage"] = _("Choose: {label}", label=label)
    return element
