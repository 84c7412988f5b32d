"""The licence screens of the users flow ("assign"): pick users and a licence product, assign,
unassign from one user. Every id comes back from the card and is re-checked by the services."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cards import users as ui
from services.access import Caller
from services.errors import InvalidInput
from services.i18n import _
from services.users import LicenceService, UserService
from services.users.licences import LicenceOutcome

ASSIGN_FIELDS = ("user_ids", "licence", "usage_location", "search")


def ids_of(value: Any) -> list[str]:
    """A multi-select's value ("a,b,c") or a list of ids from a button."""
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []


def _text(value: Mapping[str, Any], key: str, limit: int) -> str:
    item = value.get(key)
    return item.strip()[:limit] if isinstance(item, str) else ""


def _request_key(payload: Mapping[str, Any]) -> str:
    key = _text(payload, "request_key", 64)
    if not key:
        raise InvalidInput(_("This card is out of date; use the new one."))
    return key


@dataclass(frozen=True)
class AssignChoice:
    """What the admin chose on the assign card (shown again as chosen)."""

    selected: tuple[str, ...]
    licence: str
    usage_location: str
    search: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> AssignChoice:
        return cls(
            tuple(ids_of(payload.get("user_ids"))[: ui.MAX_SELECTED]),
            _text(payload, "licence", 64),
            _text(payload, "usage_location", 2),
            _text(payload, "search", 100),
        )


@dataclass(frozen=True)
class Assignment:
    choice: AssignChoice
    key: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Assignment:
        key = _request_key(payload)
        choice = AssignChoice.of(payload)
        if not choice.licence:
            raise InvalidInput(_("Choose a licence product."), field="licence")
        return cls(choice, key)


@dataclass(frozen=True)
class Unassignment:
    user_id: str
    licences: tuple[str, ...]
    key: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Unassignment:
        key = _request_key(payload)
        return cls(_text(payload, "user_id", 64), tuple(ids_of(payload.get("licences"))), key)


async def render_assign(
    users: UserService, licences: LicenceService, caller: Caller, view: Mapping[str, Any]
) -> dict[str, Any]:
    """The assign card with Microsoft's current pool numbers (read now)."""
    choice = AssignChoice.of(view)
    page = await users.list_users(caller, search=choice.search, page_size=ui.MAX_CHOICES)
    pools = await licences.pools(caller, refresh=True)
    # Chosen users stay ticked (and listed first) even when the search no longer finds them.
    chosen = await users.rows_of(caller, list(choice.selected))
    selected = [row.user_id for row in chosen]
    return ui.build_assign_card(
        chosen + [row for row in page.rows if row.user_id not in selected],
        pools,
        uuid.uuid4().hex,
        selected_users=selected,
        selected_pool=choice.licence,
        usage_location=choice.usage_location,
        search=choice.search,
        total_users=page.total,
        error=view.get("error"),
        error_field=view.get("error_field"),
    )


def pool_note(outcome: LicenceOutcome) -> str:
    pool = outcome.pool
    if pool is None:
        return ""
    return _(
        "{pool}: {available} available, {consumed} assigned of {active}.",
        pool=pool.name,
        available=pool.available,
        consumed=pool.consumed,
        active=pool.active,
    )
