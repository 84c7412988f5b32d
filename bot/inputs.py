"""What a person sends, made safe in one place before anything reads it.

- The HTTP edge (`app.handle_messages`) refuses a body nested deeper than `MAX_NESTING` levels
  (`nested_too_deeply`): parsing, validating, copying and storing an activity all recurse once per
  level, and no Teams activity comes near the limit.
- Ids of the conversation, the sender and the tenant with control characters are refused there
  too (`unsafe_ids`).
"""

from __future__ import annotations

import re
from typing import Any

from microsoft_agents.activity import Activity

from bot.identity import tenant_id_of

MAX_NESTING = 64

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


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


def unsafe_ids(activity: Activity) -> bool:
    """True if an id of the conversation, the sender or the tenant holds control characters: no
    channel sends such ids, and they are stored and compared as text."""
    ids = [activity.conversation.id if activity.conversation else None]
    ids += [activity.conversation.tenant_id if activity.conversation else None]
    ids += [activity.from_property.id, activity.from_property.aad_object_id] if activity.from_property else []
    ids += [activity.recipient.id] if activity.recipient else []
    ids += [tenant_id_of(activity)]
    return any(isinstance(item, str) and _UNSAFE.search(item) for item in ids)
