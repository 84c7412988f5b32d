"""Asking an approver for spending above the organisation's policy, from any task: the request is
recorded with the change it would run and the policy in force, and its approval card goes where
suspension requests go (`dialogs/approval_delivery.py`)."""

from __future__ import annotations

from typing import Any

from microsoft_agents.hosting.core import TurnContext

from dialogs.approval_delivery import ApprovalPosting
from services import formatting
from services.access import Caller
from services.i18n import _, ngettext
from services.spending import ApprovalNeeded
from services.spending_requests import request_payload
from services.subscriptions import ApprovalService


async def ask_an_approver(
    context: TurnContext,
    approvals: ApprovalService,
    posting: ApprovalPosting,
    caller: Caller,
    needed: ApprovalNeeded,
    *,
    kind: str,
    subscription_id: str,
    change: dict[str, Any],
) -> str:
    """Record the request (once per card), post its approval card, and say what happens next."""
    approval, created = await approvals.request_spending(
        caller,
        kind,
        what=needed.spend.what,
        subscription_id=subscription_id,
        reasons=needed.reasons,
        payload=request_payload(kind, needed, change),
        policy=needed.policy.as_dict(),
    )
    if not created:
        return _("{what} was already sent to an approver from this card.", what=needed.spend.what)
    reached, in_channel = await posting.post(context, approval)
    why = " ".join(needed.reasons)
    if reached or in_channel:
        asked = ngettext("{n} approver", "{n} approvers", reached) if reached else _("the approvals channel")
        return _(
            "{what} needs an approver ({why}) Nothing is bought yet: I asked {asked}, and it is "
            "carried out as soon as one approves. I will tell you.",
            what=needed.spend.what,
            why=why,
            asked=asked,
        )
    return _(
        "{what} needs an approver ({why}) I recorded the request, but none of your approvers has "
        "chatted with me yet: it reaches each of them the moment they say hi to me. Nothing is "
        "bought until one approves (by {datetime_utc}).",
        what=needed.spend.what,
        why=why,
        datetime_utc=formatting.datetime_utc(approval.expires_at),
    )
