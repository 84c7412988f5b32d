"""Approval cards in Teams: posted to the organisation's approvers (their 1:1 chats, where the bot has
a conversation reference) and to its approvals channel if the operator set one; the
`adaptiveCard/action` invokes (approve, reject, retry, refresh) answered at once with the card the
clicker should now see; every posted copy updated after a decision; the requester told.

The suspension itself runs as a durable job (`approval.suspend`): Microsoft may throttle, and an
invoke must be answered within seconds.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import MessageFactory, TurnContext

from bot.private_replies import MESSENGER_KEY
from bot.proactive import ProactiveMessenger
from cards.approvals import APPROVE, REFRESH, REJECT, RETRY, ApprovalCardView, build_approval_card
from dialogs.base import card_activity
from services.access import Caller
from services.container import Services
from services.errors import DomainError
from services.jobs import JobView
from services.roles import Permission
from services.subscriptions import ApprovalView

log = logging.getLogger(__name__)

JOB_KIND = "approval.suspend"
EXPIRE_JOB_KIND = "approval.expire"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"


class ApprovalDelivery:
    """Where approval cards go, and keeping every copy current."""

    def __init__(self, services: Services, messenger: ProactiveMessenger) -> None:
        self._services = services
        self._messenger = messenger

    async def card_view(self, approval: ApprovalView) -> ApprovalCardView:
        approvers = await self._services.approvals.approvers(approval.organisation_id)
        allow_self = await self._services.approvals.allows_self_approval(approval.organisation_id)
        user_ids = [
            a.channel_user_id
            for a in approvers
            if a.channel_user_id and (allow_self or a.member_id != approval.requested_by_member_id)
        ]
        return ApprovalCardView(
            approval_id=approval.id,
            subscription_name=approval.subscription_name,
            requester_name=approval.requester_name,
            reason=approval.reason,
            requested_at=approval.created_at,
            expires_at=approval.expires_at,
            status=approval.status,
            decider_name=approval.decider_name,
            decided_at=approval.decided_at,
            outcome=approval.outcome,
            approver_user_ids=user_ids,
        )

    async def post(self, approval: ApprovalView) -> tuple[int, bool]:
        """Send the card to each approver (not the requester, unless self-approval is allowed) and to
        the approvals channel. Returns how many approvers' chats were reached, and whether the
        channel was."""
        services = self._services
        view = await self.card_view(approval)
        allow_self = await services.approvals.allows_self_approval(approval.organisation_id)
        reached = 0
        for approver in await services.approvals.approvers(approval.organisation_id):
            if approver.member_id == approval.requested_by_member_id and not allow_self:
                continue
            chat = await services.conversations.personal_chat_of(approver.member_id)
            if chat is None:
                continue
            try:
                activity_id = await self._messenger.send(
                    chat.conversation_id, card_activity(build_approval_card(view, for_approver=True))
                )
            except Exception:
                log.exception("could not post approval %s to an approver", approval.id)
                continue
            await services.approvals.add_post(approval.id, chat.conversation_id, activity_id, approver=True)
            reached += 1
        channel = await services.approvals.channel_of(approval.organisation_id)
        in_channel = False
        if channel:
            try:
                activity_id = await self._messenger.send(
                    channel, card_activity(build_approval_card(view, for_approver=False))
                )
                await services.approvals.add_post(approval.id, channel, activity_id, approver=False)
                in_channel = True
            except Exception:
                log.exception("could not post approval %s to the approvals channel", approval.id)
        return reached, in_channel

    async def refresh_everywhere(self, approval: ApprovalView) -> None:
        """Replace every posted copy with the current state (best effort per copy)."""
        view = await self.card_view(approval)
        for post in approval.posts:
            if not post.get("activity_id"):
                continue
            activity = card_activity(build_approval_card(view, for_approver=bool(post.get("approver"))))
            try:
                await self._messenger.update(str(post["conversation_id"]), str(post["activity_id"]), activity)
            except Exception:
                log.warning("could not update a copy of approval %s", approval.id, exc_info=True)

    async def expired(self, approval: ApprovalView) -> None:
        """A request that expired undecided: every copy shows it, and the requester learns it."""
        await self.refresh_everywhere(approval)
        await self.tell_requester(approval)

    async def tell_requester(self, approval: ApprovalView) -> None:
        if approval.requested_by_member_id is None:
            return
        who = approval.decider_name or "An approver"
        message = {
            "suspended": f"{who} approved your request: **{approval.subscription_name}** is suspended.",
            "rejected": f"{who} rejected your request to suspend **{approval.subscription_name}**. "
            "Nothing was changed.",
            "failed": f"{who} approved suspending **{approval.subscription_name}**, but Microsoft refused or was "
            f"unreachable: {approval.outcome} An approver can retry from the card.",
            "expired": f"Your request to suspend **{approval.subscription_name}** expired on "
            f"{approval.expires_at:%d %b %Y at %H:%M} UTC before an approver decided. Nothing was changed; "
            "you can ask again from **subscriptions**.",
        }.get(approval.status)
        if message is None:
            return
        try:
            await self._messenger.send_to_member(approval.requested_by_member_id, MessageFactory.text(message))
        except Exception:
            log.warning("could not tell the requester of approval %s", approval.id, exc_info=True)


def _card_response(card: Mapping[str, Any]) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=dict(card))  # type: ignore[arg-type]


def approval_invoke_handlers(services: Services, messenger: ProactiveMessenger) -> dict[str, Any]:
    """The `adaptiveCard/action` verbs of the approval card, and the job that runs a suspension."""
    delivery = ApprovalDelivery(services, messenger)

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
        await services.jobs.submit(
            JOB_KIND,
            idempotency_key=f"{JOB_KIND}:{approval.id}:{uuid.uuid4().hex}",
            payload={"approval_id": approval.id},
            organisation_id=approval.organisation_id,
            requested_by=caller.actor,
        )

    async def decide(
        context: TurnContext, caller: Caller, data: dict[str, Any], approve: bool
    ) -> AdaptiveCardInvokeResponse:
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

    async def approve(context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        return await decide(context, caller, data, True)

    async def reject(context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        return await decide(context, caller, data, False)

    async def retry(context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        decision = await services.approvals.retry(caller, data.get("approval_id"))
        if decision.decided_now:
            await start_suspension(caller, decision.approval)
            await delivery.refresh_everywhere(decision.approval)
        return await respond(caller, decision.approval, "" if decision.decided_now else decision.message)

    async def refresh(context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        approval, expired_now = await services.approvals.look(caller, data.get("approval_id"))
        if expired_now:
            await delivery.expired(approval)
        return await respond(caller, approval)

    async def run(job: JobView) -> Mapping[str, Any]:
        approval = await services.approvals.run_suspension(int(job.payload["approval_id"]))
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
    services.jobs.register(EXPIRE_JOB_KIND, expire)
    return {APPROVE: approve, REJECT: reject, RETRY: retry, REFRESH: refresh}


async def post_request(context: TurnContext, services: Services, approval: ApprovalView) -> tuple[int, bool]:
    """From a dialog: post a new request's cards with this turn's messenger."""
    messenger = context.turn_state.get(MESSENGER_KEY)
    if not isinstance(messenger, ProactiveMessenger):
        raise DomainError("I cannot reach the approvers right now. Try again in a moment.")
    posted = await ApprovalDelivery(services, messenger).post(approval)
    try:
        await schedule_expiry(services, approval)
    except Exception:  # the request stands; a click, a refresh or another request's check expires it
        log.exception("could not schedule the expiry check of approval %s", approval.id)
    return posted


async def schedule_expiry(services: Services, approval: ApprovalView) -> None:
    """A durable job due at the request's expiry time (one per request)."""
    await services.jobs.submit(
        EXPIRE_JOB_KIND,
        idempotency_key=f"{EXPIRE_JOB_KIND}:{approval.id}",
        payload={"approval_id": approval.id},
        organisation_id=approval.organisation_id,
        requested_by="system",
        run_after=approval.expires_at,
    )
