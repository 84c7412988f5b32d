"""The licence screens of the users loop ("assign"): pick users and a licence product, assign,
unassign from one user. Every id comes back from the card and is re-checked by the services."""

from __future__ import annotations

import uuid
from typing import Any

from cards import users as ui
from services.access import Caller
from services.container import Services
from services.errors import InvalidInput


def _ids(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value if str(item).strip()]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return []


def _text(value: dict[str, Any], key: str, limit: int) -> str:
    item = value.get(key)
    return item.strip()[:limit] if isinstance(item, str) else ""


def assign_values(value: dict[str, Any]) -> dict[str, Any]:
    """What the admin had chosen on the assign card, to show it again."""
    return {
        "selected": _ids(value.get("user_ids"))[: ui.MAX_SELECTED],
        "licence": _text(value, "licence", 64),
        "usage_location": _text(value, "usage_location", 2),
        "search": _text(value, "search", 100),
    }


async def render_assign(services: Services, caller: Caller, options: dict[str, Any]) -> dict[str, Any]:
    """The assign card with Microsoft's current pool numbers (read now)."""
    search = str(options.get("search", ""))
    page = await services.users.list_users(caller, search=search, page_size=ui.MAX_CHOICES)
    pools = await services.licences.pools(caller, refresh=True)
    # Chosen users stay ticked (and listed first) even when the search no longer finds them.
    chosen = await services.users.rows_of(caller, [str(item) for item in options.get("selected", [])])
    selected = [row.user_id for row in chosen]
    return ui.build_assign_card(
        chosen + [row for row in page.rows if row.user_id not in selected],
        pools,
        uuid.uuid4().hex,
        selected_users=selected,
        selected_pool=str(options.get("licence", "")),
        usage_location=str(options.get("usage_location", "")),
        search=search,
        total_users=page.total,
        error=options.get("error"),
        error_field=options.get("error_field"),
    )


async def act(services: Services, caller: Caller, verb: str, value: dict[str, Any]) -> dict[str, Any]:
    if verb == ui.USERS_ASSIGN:
        chosen = assign_values(value)
        return {"screen": "assign", **chosen}
    key = _text(value, "request_key", 64)
    if not key:
        raise InvalidInput("This card is out of date; use the new one.")
    if verb == ui.USERS_ASSIGN_DO:
        chosen = assign_values(value)
        if not chosen["licence"]:
            raise InvalidInput("Choose a licence product.", field="licence")
        outcome = await services.licences.assign(
            caller, chosen["selected"], chosen["licence"], request_key=key, usage_location=chosen["usage_location"]
        )
        return {"screen": "card", "card": ui.build_licence_outcome_card("Licences assigned", outcome)}
    user_id = _text(value, "user_id", 64)
    outcome = await services.licences.unassign(caller, user_id, _ids(value.get("licences")), request_key=key)
    if outcome.results and all(result.ok for result in outcome.results):
        return {"screen": "user", "user_id": user_id, "notice": "Licences removed. " + _pool_note(outcome)}
    return {"screen": "card", "card": ui.build_licence_outcome_card("Licences removed", outcome)}


def _pool_note(outcome: Any) -> str:
    pool = outcome.pool
    if pool is None:
        return ""
    return f"{pool.name}: {pool.available} available, {pool.consumed} assigned of {pool.active}."
