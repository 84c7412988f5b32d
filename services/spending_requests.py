"""Carrying out a spending request an approver allowed: the purchase, the seats or the add-on the
admin confirmed, exactly once (the order key or the approval's own key), as the admin who asked —
with their role as it is now, and Microsoft's rules and the prices as they are now."""

from __future__ import annotations

from typing import Any

from services.container import Services
from services.errors import DomainError, InvalidInput
from services.i18n import _
from services.ordering import Quote
from services.roles import Permission
from services.spending import ApprovalNeeded
from services.subscriptions.approvals import ADDON, PURCHASE, SEATS, ApprovalView


def request_payload(kind: str, needed: ApprovalNeeded, change: dict[str, Any]) -> dict[str, Any]:
    """What a spending request keeps: the change to run and what the approval card shows."""
    spend = needed.spend
    shown = {"what": spend.what, "per_period": spend.per_period, "term": spend.term_duration}
    if spend.charge_now is not None:
        shown["charge_now"] = f"{spend.charge_now}:{spend.currency}"
    return {**change, "kind": kind, "shown": shown}


async def carry_out(services: Services, approval: ApprovalView) -> str:
    caller = await services.access.member_caller(approval.organisation_id, approval.requested_by)
    if caller is None or not caller.can(Permission.MANAGE_SERVICES):
        raise DomainError(
            _(
                "{requester_name} is no longer an admin of the organisation; nothing was bought.",
                requester_name=approval.requester_name,
            )
        )
    payload = approval.payload
    key = f"approval-{approval.id}"
    if approval.kind == PURCHASE:
        quote = Quote.from_dict(payload["quote"])
        await services.ordering.place_order(
            caller,
            quote,
            str(payload["key"]),
            notify_conversation_id=payload.get("conversation_id") or None,
            approved=True,
        )
        return _(
            "Ordering {quantity} × {product_name} from Microsoft.",
            quantity=quote.quantity,
            product_name=quote.product_name,
        )
    if approval.kind == SEATS:
        changes = services.subscription_changes
        subscription_id, quantity = str(payload["subscription_id"]), int(payload["quantity"])
        try:
            plan = await changes.plan_quantity(caller, subscription_id, quantity)
        except InvalidInput as error:
            raise DomainError(error.message) from None
        result = await changes.change_quantity(
            caller, subscription_id, quantity, etag=plan.etag, key=key, approved=True
        )
        return result.message
    if approval.kind == ADDON:
        result = await services.subscription_changes.order_addon(
            caller,
            str(payload["subscription_id"]),
            payload["addon"],
            payload["quantity"],
            key=key,
            approved=True,
        )
        return result.message
    raise DomainError(_("Unknown request kind {kind!r}.", kind=approval.kind))
