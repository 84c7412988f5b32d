"""A JSON codec for the SDK's dialog state.

The Agents SDK keeps live Python objects in state (DialogState → DialogInstance → PromptOptions →
Activity). Pickle would run code on load, so state is written as JSON with a small, closed set of
tagged types; anything else fails loudly at write time instead of being lost.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from microsoft_agents.activity import Activity, CardAction

from dialogs.sdk import Choice, DialogInstance, DialogState, ListStyle, PromptOptions

TAG = "$type"


class StateCodecError(TypeError):
    """A value in bot state that the codec cannot write as JSON."""


def _activity_json(activity: Activity) -> dict[str, Any]:
    return activity.model_dump(mode="json", by_alias=True, exclude_none=True)


def encode(value: Any) -> Any:
    """Turn state into JSON-native values (dicts, lists, strings, numbers, booleans, None)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        items = {str(k): encode(v) for k, v in value.items()}
        # A plain dict that happens to use the tag key is wrapped, so it cannot be mistaken.
        return {TAG: "dict", "items": items} if TAG in value else items
    if isinstance(value, list | tuple):
        return [encode(v) for v in value]
    if isinstance(value, DialogState):
        return {TAG: "DialogState", "stack": [encode(i) for i in value.dialog_stack]}
    if isinstance(value, DialogInstance):
        return {TAG: "DialogInstance", "id": value.id, "state": encode(value.state)}
    if isinstance(value, PromptOptions):
        return {
            TAG: "PromptOptions",
            "prompt": encode(value.prompt),
            "retry_prompt": encode(value.retry_prompt),
            "choices": encode(value.choices),
            "style": int(value.style) if value.style is not None else None,
            "validations": encode(value.validations),
            "number_of_attempts": value.number_of_attempts,
        }
    if isinstance(value, Activity):
        return {TAG: "Activity", "value": _activity_json(value)}
    if isinstance(value, Choice):
        return {
            TAG: "Choice",
            "value": value.value,
            "action": value.action.model_dump(mode="json", by_alias=True, exclude_none=True)
            if value.action is not None
            else None,
            "synonyms": list(value.synonyms or []),
        }
    if isinstance(value, datetime):
        return {TAG: "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {TAG: "date", "value": value.isoformat()}
    if isinstance(value, Decimal):
        return {TAG: "Decimal", "value": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        raise StateCodecError(
            f"{type(value).__name__} cannot be kept in bot state; store plain dicts in dialog options/values"
        )
    raise StateCodecError(f"{type(value).__name__} cannot be kept in bot state")


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(TAG)
    if tag is None:
        return {k: decode(v) for k, v in value.items()}
    if tag == "dict":
        return {k: decode(v) for k, v in value["items"].items()}
    if tag == "DialogState":
        return DialogState(dialog_stack=[decode(i) for i in value["stack"]])
    if tag == "DialogInstance":
        return DialogInstance(id=value["id"], state=decode(value["state"]))
    if tag == "PromptOptions":
        return PromptOptions(
            prompt=decode(value["prompt"]),
            retry_prompt=decode(value["retry_prompt"]),
            choices=decode(value["choices"]),
            style=ListStyle(value["style"]) if value["style"] is not None else None,
            validations=decode(value["validations"]),
            number_of_attempts=value["number_of_attempts"],
        )
    if tag == "Activity":
        return Activity.model_validate(value["value"])
    if tag == "Choice":
        action = CardAction.model_validate(value["action"]) if value["action"] is not None else None
        return Choice(value=value["value"], action=action, synonyms=list(value["synonyms"]))
    if tag == "datetime":
        return datetime.fromisoformat(value["value"])
    if tag == "date":
        return date.fromisoformat(value["value"])
    if tag == "Decimal":
        return Decimal(value["value"])
    raise StateCodecError(f"unknown tagged type {tag!r} in stored bot state")


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), ensure_ascii=False)


def loads(text: str) -> Any:
    return decode(json.loads(text))
