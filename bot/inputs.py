"""What a person sends, made safe in one place before anything reads it.

- The HTTP edge (`app.handle_messages`) refuses a body nested deeper than `MAX_NESTING` levels
  (`nested_too_deeply`): parsing, validating, copying and storing an activity all recurse once per
  level, and no Teams activity comes near the limit.
- Ids of the conversation, the sender and the tenant with control characters are refused there
  too (`unsafe_ids`).
- `CspBot.on_turn` passes every activity through `sanitise_activity` first: control characters
  are removed from typed text, from every string (and key) of a card's `value` and from the
  sender's and conversation's names. Tab and newline stay (a multi-line input has them; a
  carriage return becomes a newline); NUL, which PostgreSQL cannot store in text, and lone UTF-16
  surrogates, which JSON can escape but no database can encode, go with the rest.
- Typed text longer than `MAX_TYPED_CHARS`, or a card field longer than `MAX_FIELD_CHARS`, is
  refused with a message saying so; nothing else happens in that turn, so a task keeps waiting.
  Each form still checks its own fields' limits (e.g. a suspension reason) and says which.
"""

from __future__ import annotations

import re
from typing import Any

from microsoft_agents.activity import Activity

from bot.identity import tenant_id_of
from services.i18n import _

MAX_NESTING = 64
MAX_TYPED_CHARS = 2_000
# A multi-select of up to 100 user ids (GUIDs) is the longest legitimate card field.
MAX_FIELD_CHARS = 8_000

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class _TooDeep(Exception):
    pass


def nested_too_deeply(value: Any, limit: int = MAX_NESTING) -> bool:
    """True if lists/objects nest more than `limit` levels (iterative: safe on any depth)."""
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def clean_text(text: str) -> str:
    """Without control characters and lone surrogates; tab and newline kept, CR made a newline."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _UNSAFE.sub("", text)


def _clean_value(value: Any, depth: int = 0) -> Any:
    if depth > MAX_NESTING:
        raise _TooDeep
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean_value(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_value(item, depth + 1) for item in value]
    return value


def _longest_string(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return max((_longest_string(item) for item in value.values()), default=0)
    if isinstance(value, list):
        return max((_longest_string(item) for item in value), default=0)
    return 0


def unsafe_ids(activity: Activity) -> bool:
    """True if an id of the conversation, the sender or the tenant holds control characters: no
    channel sends such ids, and they are stored and compared as text."""
    ids = [activity.conversation.id if activity.conversation else None]
    ids += [activity.conversation.tenant_id if activity.conversation else None]
    ids += [activity.from_property.id, activity.from_property.aad_object_id] if activity.from_property else []
    ids += [activity.recipient.id] if activity.recipient else []
    ids += [tenant_id_of(activity)]
    return any(isinstance(item, str) and _UNSAFE.search(item) for item in ids)


def sanitise_activity(activity: Activity) -> str | None:
    """Clean the activity in place. Returns why it is refused (a message for the person), or None."""
    if isinstance(activity.text, str):
        if len(activity.text) > MAX_TYPED_CHARS:
            return _(
                "That message is too long for me ({len:,} characters; at most {MAX_TYPED_CHARS:,}). "
                "Nothing was changed: send a shorter one.",
                len=len(activity.text),
                MAX_TYPED_CHARS=MAX_TYPED_CHARS,
            )
        activity.text = clean_text(activity.text)
    if activity.value is not None:
        try:
            value = _clean_value(activity.value)
        except _TooDeep:
            return _("I could not read what that card sent. Nothing was changed: use the card again.")
        if _longest_string(value) > MAX_FIELD_CHARS:
            return _(
                "Something you entered on that card is too long (at most {MAX_FIELD_CHARS:,} characters). "
                "Nothing was changed: shorten it and send the card again.",
                MAX_FIELD_CHARS=MAX_FIELD_CHARS,
            )
        activity.value = value
    for account in (activity.from_property, activity.recipient, activity.conversation):
        if account is not None and isinstance(account.name, str):
            account.name = clean_text(account.name)
    return None
