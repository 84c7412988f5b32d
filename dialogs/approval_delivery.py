"""Posting approval cards and keeping every copy current: to the organisation's approvers (their 1:1
chats, where the bot has a conversation reference) and to its approvals channel if the operator set
one; the requester told of the decision.

Used by the dialogs (`ApprovalPosting`: a new suspension or spending request) and by the bot's approval
invokes and job (`bot/approvals.py`). It lives in `dialogs/` because dialogs may import only cards and
services: the bot hands its proactive messenger to each turn (`dialogs.private_replies.MESSENGER_KEY`).
The whole approval flow, module by module: `services/subscriptions/approvals.py`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from decimal import Decimal

from microsoft_agents.hosting.core import MessageFactory, TurnContext

from cards.approvals import ApprovalCardView, build_approval_card
from dialogs.base import card_activity
from dialogs.private_replies import Messenger, messenger_of
from services import formatting
from services.conversations import ConversationReferenceService
from services.errors import DomainError
from services.formatting import Reader
from services.i18n import N_, _
from services.jobs import JobService
from services.spending import PolicyView
from services.subscriptions import ApprovalService, ApprovalView

log = logging.getLogger(__name__)

EXPIRE_JOB_KIND = "approval.expire"
TERM_WORDS = {"P1M": N_("1 month"), "P1Y": N_("1 year"), "P2Y": N_("2 years"), "P3Y": N_("3 years")}
Readers = Callable[[int], Awaitable[Reader]]  # how a member reads (`AccessService.reader_of_member`)


class ApprovalDelivery:
    """Where approval cards go, and keeping every copy current. Each approver's copy (and the
    requester's news) reads in that person's language; the channel's copy in the reader of the moment."""

    def __init__(
        self,
        approvals: ApprovalService,
        conversations: ConversationReferenceService,
        messenger: Messenger,
        readers: Readers,
    ) -> None:
        self._approvals = approvals
        self._conversations = conversations
        self._messenger = messenger
        self._readers = readers

    async def reading_for(self, member_id: object) -> AbstractContextManager[object]:
        """A member's copy reads in their language and time zone; a copy with no member (the
        channel's, or one posted before copies named their member) in the reader of the moment."""
        if not isinstance(member_id, int) or isinstance(member_id, bool):
            return contextlib.nullcontext()
        try:
            reader = await self._readers(member_id)
        except Exception:  # the copy still goes out, in the reader of the moment
            log.exception("could not read the language of member %s", member_id)
            return contextlib.nullcontext()
        return formatting.reading(reader.locale, reader.timezone)

    async def card_view(self, approval: ApprovalView) -> ApprovalCardView:
        """The card's view, in the reader of the moment (its words are translated as it is made)."""
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
        allow_self = await approvals.allows_self_approval(approval.organisation_id)
        reached = 0
        for approver in await approvals.approvers(approval.organisation_id):
            if approver.member_id == approval.requested_by_member_id and not allow_self:
                continue
            chat = await self._conversations.personal_chat_of(approver.member_id)
            if chat is None:
                continue
            with await self.reading_for(approver.member_id):
                card = build_approval_card(await self.card_view(approval), for_approver=True)
            try:
                activity_id = await self._messenger.send(chat.conversation_id, card_activity(card))
            except Exception:
                log.exception("could not post approval %s to an approver", approval.id)
                continue
            await approvals.add_post(
                approval.id, chat.conversation_id, activity_id, approver=True, member_id=approver.member_id
            )
            reached += 1
        channel = await approvals.channel_of(approval.organisation_id)
        in_channel = False
        if channel:
            try:
                view = await self.card_view(approval)
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
            with await self.reading_for(member_id):
                card = build_approval_card(await self.card_view(approval), for_approver=True)
            try:
                activity_id = await self._messenger.send(chat_id, card_activity(card))
            except Exception:
                log.exception("could not post approval %s to an approver who has just arrived", approval.id)
                continue
            await approvals.add_post(approval.id, chat_id, activity_id, approver=True, member_id=member_id)
            posted += 1
        return posted

    async def refresh_everywhere(self, approval: ApprovalView) -> None:
        """Replace every posted copy with the current state, in its reader's language (best effort per copy)."""
        for post in approval.posts:
            if not post.get("activity_id"):
                continue
            approver = bool(post.get("approver"))
            with await self.reading_for(post.get("member_id")):
                view = await self.card_view(approval)
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
        with await self.reading_for(approval.requested_by_member_id):
            message = requester_news(approval)
        if message is None:
            return
        try:
            await self._messenger.send_to_member(approval.requested_by_member_id, MessageFactory.text(message))
        except Exception:
            log.warning("could not tell the requester of approval %s", approval.id, exc_info=True)


def requester_news(approval: ApprovalView) -> str | None:
    """What the requester is told of their request's state, in the reader of the moment (None: nothing yet)."""
    who = approval.decider_name or _("An approver")
    what = approval.subscription_name
    until = formatting.datetime_utc(approval.expires_at)
    if approval.kind != "suspend":
        if approval.status == "done":
            return _("{who} approved your request ({what}): {outcome}", who=who, what=what, outcome=approval.outcome)
        if approval.status == "rejected":
            return _("{who} rejected your request ({what}). Nothing was bought.", who=who, what=what)
        if approval.status == "failed":
            return _(
                "{who} approved your request ({what}), but it failed: {outcome} An approver can retry from the card.",
                who=who,
                what=what,
                outcome=approval.outcome,
            )
        if approval.status == "expired":
            return _(
                "Your request ({what}) expired on {until} before an approver decided. "
                "Nothing was bought; you can ask again.",
                what=what,
                until=until,
            )
        return None
    if approval.status == "suspended":
        return _("{who} approved your request: **{subscription}** is suspended.", who=who, subscription=what)
    if approval.status == "rejected":
        return _(
            "{who} rejected your request to suspend **{subscription}**. Nothing was changed.",
            who=who,
            subscription=what,
        )
    if approval.status == "failed":
        return _(
            "{who} approved suspending **{subscription}**, but Microsoft refused or was unreachable: {outcome} "
            "An approver can retry from the card.",
            who=who,
            subscription=what,
            outcome=approval.outcome,
        )
    if approval.status == "expired":
        return _(
            "Your request to suspend **{subscription}** expired on {until} before an approver decided. "
            "Nothing was changed; you can ask again from **subscriptions**.",
            subscription=what,
            until=until,
        )
    return None


def spending_details(approval: ApprovalView) -> list[tuple[str, str]]:
    """What a spending request's card shows: the charge now, the cost per period, the commitment."""
    shown = approval.payload.get("shown") or {}
    details: list[tuple[str, str]] = []
    amount, _sep, currency = str(shown.get("charge_now") or "").partition(":")
    if amount:
        details.append((_("Charged now"), formatting.money(Decimal(amount), currency)))
    if shown.get("per_period"):
        details.append((_("Cost"), str(shown["per_period"])))
    if shown.get("term"):
        term = str(shown["term"])
        known = TERM_WORDS.get(term)
        details.append((_("Commitment"), _(known) if known else term))
    return details


class ApprovalPosting:
    """What a dialog needs to put a new request in front of the approvers: this turn's messenger,
    where the cards go, and the durable job that expires the request."""

    def __init__(
        self,
        approvals: ApprovalService,
        conversations: ConversationReferenceService,
        jobs: JobService,
        readers: Readers,
    ) -> None:
        self._approvals = approvals
        self._conversations = conversations
        self._jobs = jobs
        self._readers = readers

    def _delivery(self, messenger: Messenger) -> ApprovalDelivery:
        return ApprovalDelivery(self._approvals, self._conversations, messenger, self._readers)

    async def post(self, context: TurnContext, approval: ApprovalView) -> tuple[int, bool]:
        """Post a new request's cards with this turn's messenger; (approvers' chats reached, channel reached)."""
        messenger = messenger_of(context)
        if messenger is None:
            raise DomainError(_("I cannot reach the approvers right now. Try again in a moment."))
        posted = await self._delivery(messenger).post(approval)
        try:
            await schedule_expiry(self._jobs, approval)
        except Exception:  # the request stands; a click, a refresh or another request's check expires it
            log.exception("could not schedule the expiry check of approval %s", approval.id)
        return posted

    async def refresh(self, context: TurnContext, approval: ApprovalView) -> None:
        """Show a request's new state on every copy of its card (e.g. once withdrawn)."""
        messenger = messenger_of(context)
        if messenger is not None:
            await self._delivery(messenger).refresh_everywhere(approval)


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
