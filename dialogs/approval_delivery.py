"""Posting approval cards and keeping every copy current: to the organisation's approvers (their 1:1
chats, where the bot has a conversation reference) and to its approvals channel if the operator set
one; the requester told of the decision.

Used by the dialogs (`ApprovalPosting`: a new suspension or spending request) and by the bot's approval
invokes and job (`bot/approvals.py`). It lives in `dialogs/` because dialogs may import only cards and
services: the bot hands its proactive messenger to each turn (`dialogs.private_replies.MESSENGER_KEY`).
The whole approval flow, module by module: `services/subscriptions/approvals.py`.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from microsoft_agents.hosting.core import MessageFactory, TurnContext

from cards.approvals import ApprovalCardView, build_approval_card
from dialogs.base import card_activity
from dialogs.private_replies import Messenger, messenger_of
from services import formatting
from services.conversations import ConversationReferenceService
from services.errors import DomainError
from services.i18n import _
from services.jobs import JobService
from services.spending import PolicyView
from services.subscriptions import ApprovalService, ApprovalView

log = logging.getLogger(__name__)

EXPIRE_JOB_KIND = "approval.expire"
TERM_WORDS = {"P1M": "1 month", "P1Y": "1 year", "P2Y": "2 years", "P3Y": "3 years"}


class ApprovalDelivery:
    """Where approval cards go, and keeping every copy current."""

    def __init__(
        self, approvals: ApprovalService, conversations: ConversationReferenceService, messenger: Messenger
    ) -> None:
        self._approvals = approvals
        self._conversations = conversations
        self._messenger = messenger

    async def card_view(self, approval: ApprovalView) -> ApprovalCardView:
        approvers = await self._approvals.approvers(approval.organisation_id)
        allow_self = await self._approvals.allows_self_approval(approval.organisation_id)
        deciders = [a for a in approvers if allow_self or a.member_id != approval.requested_by_member_id]
        user_ids = [a.channel_user_id for a in deciders if a.channel_user_id]
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
            approver_names=[a.name for a in deciders],
            kind=approval.kind,
            details=spending_details(approval),
            policy_lines=PolicyView.from_dict(approval.policy).lines() if approval.kind != "suspend" else (),
        )

    async def post(self, approval: ApprovalView) -> tuple[int, bool]:
        """Send the card to each approver (not the requester, unless self-approval is allowed) and to
        the approvals channel. Returns how many approvers' chats were reached, and whether the
        channel was."""
        approvals = self._approvals
        view = await self.card_view(approval)
        allow_self = await approvals.allows_self_approval(approval.organisation_id)
        reached = 0
        for approver in await approvals.approvers(approval.organisation_id):
            if approver.member_id == approval.requested_by_member_id and not allow_self:
                continue
            chat = await self._conversations.personal_chat_of(approver.member_id)
            if chat is None:
                continue
            try:
                activity_id = await self._messenger.send(
                    chat.conversation_id, card_activity(build_approval_card(view, for_approver=True))
                )
            except Exception:
                log.exception("could not post approval %s to an approver", approval.id)
                continue
            await approvals.add_post(approval.id, chat.conversation_id, activity_id, approver=True)
            reached += 1
        channel = await approvals.channel_of(approval.organisation_id)
        in_channel = False
        if channel:
            try:
                activity_id = await self._messenger.send(
                    channel, card_activity(build_approval_card(view, for_approver=False, in_channel=True))
                )
                await approvals.add_post(approval.id, channel, activity_id, approver=False)
                in_channel = True
            except Exception:
                log.exception("could not post approval %s to the approvals channel", approval.id)
        return reached, in_channel

    async def deliver_waiting(self, organisation_id: int, member_id: int, chat_id: str) -> int:
        """An approver has just opened a chat with the bot: post them every undecided request of
        their organisation that could not reach them before. Returns how many were posted."""
        approvals = self._approvals
        approver = next((a for a in await approvals.approvers(organisation_id) if a.member_id == member_id), None)
        if approver is None:
            return 0
        posted = 0
        for approval in await approvals.waiting_for(approver, organisation_id, chat_id):
            view = await self.card_view(approval)
            try:
                activity_id = await self._messenger.send(
                    chat_id, card_activity(build_approval_card(view, for_approver=True))
                )
            except Exception:
                log.exception("could not post approval %s to an approver who has just arrived", approval.id)
                continue
            await approvals.add_post(approval.id, chat_id, activity_id, approver=True)
            posted += 1
        return posted

    async def refresh_everywhere(self, approval: ApprovalView) -> None:
        """Replace every posted copy with the current state (best effort per copy)."""
        view = await self.card_view(approval)
        for post in approval.posts:
            if not post.get("activity_id"):
                continue
            approver = bool(post.get("approver"))
            activity = card_activity(build_approval_card(view, for_approver=approver, in_channel=not approver))
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
        what = approval.subscription_name
        spending = {
            "done": f"{who} approved your request ({what}): {approval.outcome}",
            "rejected": f"{who} rejected your request ({what}). Nothing was bought.",
            "failed": f"{who} approved your request ({what}), but it failed: {approval.outcome} "
            "An approver can retry from the card.",
            "expired": f"Your request ({what}) expired on {formatting.datetime_utc(approval.expires_at)} before an "
            "approver decided. Nothing was bought; you can ask again.",
        }
        message = (
            spending.get(approval.status)
            if approval.kind != "suspend"
            else {
                "suspended": f"{who} approved your request: **{approval.subscription_name}** is suspended.",
                "rejected": f"{who} rejected your request to suspend **{approval.subscription_name}**. "
                "Nothing was changed.",
                "failed": f"{who} approved suspending **{approval.subscription_name}**, but Microsoft refused or was "
                f"unreachable: {approval.outcome} An approver can retry from the card.",
                "expired": f"Your request to suspend **{approval.subscription_name}** expired on "
                f"{formatting.datetime_utc(approval.expires_at)} before an approver decided. Nothing was changed; "
                "you can ask again from **subscriptions**.",
            }.get(approval.status)
        )
        if message is None:
            return
        try:
            await self._messenger.send_to_member(approval.requested_by_member_id, MessageFactory.text(message))
        except Exception:
            log.warning("could not tell the requester of approval %s", approval.id, exc_info=True)


def spending_details(approval: ApprovalView) -> list[tuple[str, str]]:
    """What a spending request's card shows: the charge now, the cost per period, the commitment."""
    shown = approval.payload.get("shown") or {}
    details: list[tuple[str, str]] = []
    amount, _, currency = str(shown.get("charge_now") or "").partition(":")
    if amount:
        details.append(("Charged now", formatting.money(Decimal(amount), currency)))
    if shown.get("per_period"):
        details.append(("Cost", str(shown["per_period"])))
    if shown.get("term"):
        details.append(("Commitment", TERM_WORDS.get(str(shown["term"]), str(shown["term"]))))
    return details


class ApprovalPosting:
    """What a dialog needs to put a new request in front of the approvers: this turn's messenger,
    where the cards go, and the durable job that expires the request."""

    def __init__(
        self, approvals: ApprovalService, conversations: ConversationReferenceService, jobs: JobService
    ) -> None:
        self._approvals = approvals
        self._conversations = conversations
        self._jobs = jobs

    async def post(self, context: TurnContext, approval: ApprovalView) -> tuple[int, bool]:
        """Post a new request's cards with this turn's messenger; (approvers' chats reached, channel reached)."""
        messenger = messenger_of(context)
        if messenger is None:
            raise DomainError(_("I cannot reach the approvers right now. Try again in a moment."))
        posted = await ApprovalDelivery(self._approvals, self._conversations, messenger).post(approval)
        try:
            await schedule_expiry(self._jobs, approval)
        except Exception:  # the request stands; a click, a refresh or another request's check expires it
            log.exception("could not schedule the expiry check of approval %s", approval.id)
        return posted

    async def refresh(self, context: TurnContext, approval: ApprovalView) -> None:
        """Show a request's new state on every copy of its card (e.g. once withdrawn)."""
        messenger = messenger_of(context)
        if messenger is not None:
            await ApprovalDelivery(self._approvals, self._conversations, messenger).refresh_everywhere(approval)


async def schedule_expiry(jobs: JobService, approval: ApprovalView) -> None:
    """A durable job due at the request's expiry time (one per request); `bot/approvals.py` runs it."""
    await jobs.submit(
        EXPIRE_JOB_KIND,
        idempotency_key=f"{EXPIRE_JOB_KIND}:{approval.id}",
        payload={"approval_id": approval.id},
        organisation_id=approval.organisation_id,
        requested_by="system",
        run_after=approval.expires_at,
    )
