"""Approval cards in Teams: posted to the organisation's approvers (their 1:1 chats, where the bot has
a conversation reference) and to its approvals channel if the operator set one; the
`adaptiveCard/action` invokes (approve, reject, retry, refresh) answered at once with the card the
clicker should now see; every posted copy updated after a decision; the requester told.

The suspension itself runs as a durable job (`approval.suspend`): Microsoft may throttle, and an
invoke must be answered within seconds.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.proactive import ProactiveMessenger
from cards.approvals import APPROVE, REFRESH, REJECT, RETRY, build_approval_card
from dialogs.approval_delivery import EXPIRE_JOB_KIND, ApprovalDelivery
from services.access import Caller
from services.container import Services
from services.jobs import JobView
from services.roles import Permission
from services.spending_requests import carry_out
from services.subscriptions import ApprovalView

JOB_KIND = "approval.suspend"
SPEND_JOB_KIND = "approval.spend"  # a purchase, seats or an add-on an approver allowed
CARD_TYPE = "application/vnd.microsoft.card.adaptive"


def _card_response(card: Mapping[str, Any]) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=dict(card))


def approval_invoke_handlers(services: Services, messenger: ProactiveMessenger) -> dict[str, Any]:
    """The `adaptiveCard/action` verbs of the approval card, and the job that runs a suspension."""
    delivery = ApprovalDelivery(services.approvals, services.conversations, messenger, services.access.reader_of_member)

    async def respond(caller: Caller, approval: ApprovalView, note: str = "") -> AdaptiveCardInvokeResponse:
        view = await delivery.card_view(approval)
        for_approver = caller.can(Permission.DECIDE_SUSPENSION) and (
            caller.member_id != approval.requested_by_member_id
            or await services.approvals.allows_self_approval(approval.organisation_id)
        )
        card = build_approval_card(view, for_approver=for_approver)
        if note:
            card["body"].append({"type": "TextBlock", "text": note, "wrap": True, "isSubtle": True})
        return _card_response(card)

    async def start_suspension(caller: Caller, approval: ApprovalView) -> None:
        kind = JOB_KIND if approval.kind == "suspend" else SPEND_JOB_KIND
        await services.jobs.submit(
            kind,
            idempotency_key=f"{kind}:{approval.id}:{uuid.uuid4().hex}",
            payload={"approval_id": approval.id},
            organisation_id=approval.organisation_id,
            requested_by=caller.actor,
        )

    async def decide(caller: Caller, data: dict[str, Any], approve: bool) -> AdaptiveCardInvokeResponse:
        decision = await services.approvals.decide(caller, data.get("approval_id"), approve=approve)
        if decision.expired_now:
            await delivery.expired(decision.approval)
        if decision.decided_now:
            if approve:
                await start_suspension(caller, decision.approval)
            else:
                await delivery.tell_requester(decision.approval)
            await delivery.refresh_everywhere(decision.approval)
        return await respond(caller, decision.approval, "" if decision.decided_now else decision.message)

    async def approve(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        return await decide(caller, data, True)

    async def reject(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        return await decide(caller, data, False)

    async def retry(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        decision = await services.approvals.retry(caller, data.get("approval_id"))
        if decision.decided_now:
            await start_suspension(caller, decision.approval)
            await delivery.refresh_everywhere(decision.approval)
        return await respond(caller, decision.approval, "" if decision.decided_now else decision.message)

    async def refresh(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        approval, expired_now = await services.approvals.look(caller, data.get("approval_id"))
        if expired_now:
            await delivery.expired(approval)
        return await respond(caller, approval)

    async def run(job: JobView) -> Mapping[str, Any]:
        approval = await services.approvals.run_suspension(int(job.payload["approval_id"]))
        await delivery.refresh_everywhere(approval)
        await delivery.tell_requester(approval)
        return {"status": approval.status, "message": approval.outcome}

    async def run_spending(job: JobView) -> Mapping[str, Any]:
        """The approved purchase, seats or add-on, carried out once (see services/spending_requests.py)."""

        async def _carry_out(approval: ApprovalView) -> str:
            return await carry_out(services, approval)

        approval = await services.approvals.run_spending(int(job.payload["approval_id"]), _carry_out)
        await delivery.refresh_everywhere(approval)
        await delivery.tell_requester(approval)
        return {"status": approval.status, "message": approval.outcome}

    async def expire(job: JobView) -> Mapping[str, Any]:
        """Due when the request expires: mark it (and any other overdue request) expired, update
        every copy of its card and tell the requester — once, whoever noticed first."""
        approval, expired_now = await services.approvals.expire(int(job.payload["approval_id"]))
        if expired_now:
            await delivery.expired(approval)
        for other in await services.approvals.expire_due():
            await delivery.expired(other)
        return {"status": approval.status}

    services.jobs.register(JOB_KIND, run)
    services.jobs.register(SPEND_JOB_KIND, run_spending)
    services.jobs.register(EXPIRE_JOB_KIND, expire)
    return {APPROVE: approve, REJECT: reject, RETRY: retry, REFRESH: refresh}
