"""Warning cards in Teams: posted by the warnings pass into each admin's 1:1 chat, and the
`adaptiveCard/action` verbs of their buttons, answered at once with the card the clicker should now
see. Every action re-checks at click time through the services (the same change paths as the
subscriptions task); when it is too late the card says why and has no button. After an action the
other admins' copies show what was done.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.core import TurnContext

from bot.proactive import ProactiveMessenger
from cards import warnings as cards
from cards.billing import build_export_link_card
from dialogs.base import card_activity
from dialogs.catalogue import CardActionHandler
from services import formatting
from services.access import Caller
from services.billing.service import EXPORT_LINK_MINUTES, OVERVIEW_FORMAT
from services.container import Services
from services.errors import DomainError, InvalidInput
from services.i18n import _
from services.organisations import MemberView
from services.roles import Permission, Role
from services.warnings.overview import overview_name
from services.warnings.rules import Kind
from services.warnings.service import CHANNEL_MEMBER, NoticeView, Recipient

log = logging.getLogger(__name__)

CARD_TYPE = "application/vnd.microsoft.card.adaptive"
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _card_response(card: Mapping[str, Any]) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=CARD_TYPE, value=dict(card))


def warning_invoke_handlers(services: Services, messenger: ProactiveMessenger) -> dict[str, Any]:
    """The warning cards' verbs; also hands the warnings pass its delivery (posting a card)."""
    warnings = services.warnings

    async def admin_user_ids(organisation_id: int) -> list[str]:
        return [r.channel_user_id for r in await _admins(services, organisation_id) if r.channel_user_id]

    async def current_card(notice: NoticeView) -> dict[str, Any]:
        """The notice as it stands now: done, too late, or still to act on."""
        users = await admin_user_ids(notice.organisation_id)
        if notice.status == "acted":
            return cards.build_record_card(notice, user_ids=users)
        too_late = _too_late(notice, warnings.clock())
        if too_late:
            return cards.build_too_late_card(notice, too_late, user_ids=users)
        return cards.build_warning_card(notice, user_ids=users)

    async def reading_for(member_id: Any) -> AbstractContextManager[object]:
        """A member's copy reads in their language and time zone; the channel's copy (no member) in
        the reader of the moment (the turn's, or English outside one)."""
        if not isinstance(member_id, int) or member_id == CHANNEL_MEMBER:
            return contextlib.nullcontext()
        reader = await services.access.reader_of_member(member_id)
        return formatting.reading(reader.locale, reader.timezone)

    async def deliver(notice: NoticeView, recipient: Recipient) -> str | None:
        with await reading_for(recipient.member_id):
            activity = card_activity(await current_card(notice))
        return await messenger.send(recipient.conversation_id, activity)

    async def update_everywhere(notice: NoticeView) -> None:
        """Every posted copy shows the notice's state now, in its reader's language (best effort per copy)."""
        for post in notice.posts:
            if not post.get("activity_id"):
                continue
            try:
                with await reading_for(post.get("member_id")):
                    activity = card_activity(await current_card(notice))
                await messenger.update(str(post["conversation_id"]), str(post["activity_id"]), activity)
            except Exception:
                log.warning("could not update a copy of warning %s", notice.id, exc_info=True)

    async def acted(notice_id: int) -> AdaptiveCardInvokeResponse:
        notice = await warnings.notice(notice_id)
        assert notice is not None
        await update_everywhere(notice)
        return _card_response(await current_card(notice))

    async def attempt(
        caller: Caller, data: dict[str, Any], kinds: tuple[Kind, ...]
    ) -> tuple[NoticeView, AdaptiveCardInvokeResponse | None]:
        """The caller's notice, or the answer already due: done before, too late, not this card's."""
        notice = await warnings.notice_for(caller, data.get("notice_id"))
        if notice.status == "acted" or notice.kind not in kinds:
            return notice, _card_response(await current_card(notice))
        too_late = _too_late(notice, warnings.clock())
        if too_late:
            return notice, _card_response(await current_card(notice))
        return notice, None

    async def explain(notice: NoticeView, problem: DomainError) -> AdaptiveCardInvokeResponse:
        """An action refused now: too late (no button), or bad input (the card again, with why)."""
        users = await admin_user_ids(notice.organisation_id)
        if isinstance(problem, InvalidInput):
            return _card_response(cards.build_warning_card(notice, user_ids=users, problem=problem.message))
        return _card_response(cards.build_too_late_card(notice, problem.message, user_ids=users))

    Show = Callable[[Caller, NoticeView], Awaitable[Mapping[str, Any]]]

    def showing(kinds: tuple[Kind, ...], show: Show) -> CardActionHandler:
        """A button that answers with a card of what the action would do (re-checked now; refused now →
        the card says why)."""

        async def handler(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
            notice, answer = await attempt(caller, data, kinds)
            if answer is not None:
                return answer
            try:
                return _card_response(await show(caller, notice))
            except DomainError as problem:
                return await explain(notice, problem)

        return handler

    async def removal_preview(caller: Caller, notice: NoticeView) -> Mapping[str, Any]:
        plan = await warnings.plan_removal(caller, notice)
        return cards.build_removal_preview_card(notice, plan, f"warning:{notice.id}:remove")

    async def term_options(caller: Caller, notice: NoticeView) -> Mapping[str, Any]:
        return cards.build_term_switch_card(notice, await warnings.plan_term_switch(caller, notice))

    remove = showing((Kind.SEAT_WINDOW,), removal_preview)
    switch_term = showing((Kind.RENEWAL,), term_options)

    Act = Callable[[Caller, NoticeView, dict[str, Any]], Awaitable[object]]

    def acting(kinds: tuple[Kind, ...], act: Act) -> CardActionHandler:
        """A button that acts on its notice: re-checked, done through the services, then every copy
        shows the outcome; refused now → the card says why."""

        async def handler(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
            notice, answer = await attempt(caller, data, kinds)
            if answer is not None:
                return answer
            try:
                await act(caller, notice, data)
            except DomainError as problem:
                return await explain(notice, problem)
            return await acted(notice.id)

        return handler

    confirm_remove = acting(
        (Kind.SEAT_WINDOW,),
        lambda caller, notice, data: warnings.remove_seats(
            caller, notice, data.get("quantity"), etag=data.get("etag"), key=data.get("request_key")
        ),
    )
    keep = acting((Kind.SEAT_WINDOW, Kind.RENEWAL), lambda caller, notice, _data: warnings.keep(caller, notice))
    renew_with = acting(
        (Kind.RENEWAL,),
        lambda caller, notice, data: warnings.renew_with(
            caller, notice, data.get("quantity"), key=f"warning:{notice.id}:renew"
        ),
    )

    confirm_term = acting(
        (Kind.RENEWAL,),
        lambda caller, notice, data: warnings.switch_term(
            caller,
            notice,
            data.get("term_duration"),
            data.get("billing_cycle"),
            key=f"warning:{notice.id}:term:{data.get('term_duration')}:{data.get('billing_cycle')}",
        ),
    )
    auto_renew_off = acting(
        (Kind.RENEWAL,),
        lambda caller, notice, _data: warnings.auto_renew_off(caller, notice, key=f"warning:{notice.id}:autorenew"),
    )

    async def unassign(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        notice, answer = await attempt(caller, data, (Kind.IDLE,))
        if answer is not None:
            return answer
        user = next((u for u in notice.facts.get("inactive_users", []) if u["user_id"] == data.get("user_id")), None)
        if user is None:
            return _card_response(await current_card(notice))
        return _card_response(cards.build_unassign_confirm_card(notice, user))

    async def confirm_unassign(
        _context: TurnContext, caller: Caller, data: dict[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        notice, answer = await attempt(caller, data, (Kind.IDLE,))
        if answer is not None:
            return answer
        user_id = data.get("user_id")
        try:
            await warnings.unassign(caller, notice, user_id, key=f"warning:{notice.id}:unassign:{user_id}")
        except DomainError as problem:
            return await explain(notice, problem)
        changed = await warnings.notice(notice.id)
        assert changed is not None
        await update_everywhere(changed)
        return _card_response(await current_card(changed))

    async def back(_context: TurnContext, caller: Caller, data: dict[str, Any]) -> AdaptiveCardInvokeResponse:
        notice = await warnings.notice_for(caller, data.get("notice_id"))
        return _card_response(await current_card(notice))

    async def deliver_overview(organisation_id: int, overview: Mapping[str, Any], recipient: Recipient) -> str | None:
        org = await services.organisations.get_by_id(organisation_id)
        with await reading_for(recipient.member_id):
            activity = card_activity(cards.build_overview_card(overview, org.name))
        return await messenger.send(recipient.conversation_id, activity)

    async def overview_download(
        _context: TurnContext, caller: Caller, data: dict[str, Any]
    ) -> AdaptiveCardInvokeResponse:
        """A fresh single-use link to the overview's XLSX, for an admin or billing reader (as billing's exports)."""
        caller.require(Permission.READ_BILLING)
        month = data.get("month")
        if not isinstance(month, str) or not _MONTH.fullmatch(month):
            raise InvalidInput(_("That overview is not valid any more."))
        await warnings.overview(caller.organisation_id, month)
        chosen = (int(month[:4]), int(month[5:]))
        token = await services.billing.create_export_link(caller, OVERVIEW_FORMAT, chosen, chosen)
        url = services.billing.export_url(token)
        return _card_response(build_export_link_card(overview_name(month), url, EXPORT_LINK_MINUTES))

    warnings.set_delivery(deliver, deliver_overview)
    return {
        cards.REMOVE: remove,
        cards.CONFIRM_REMOVE: confirm_remove,
        cards.KEEP: keep,
        cards.RENEW_WITH: renew_with,
        cards.AUTORENEW_OFF: auto_renew_off,
        cards.SWITCH_TERM: switch_term,
        cards.CONFIRM_TERM: confirm_term,
        cards.UNASSIGN: unassign,
        cards.CONFIRM_UNASSIGN: confirm_unassign,
        cards.BACK: back,
        cards.REFRESH: back,
        cards.OVERVIEW_XLSX: overview_download,
    }


def _too_late(notice: NoticeView, now: datetime) -> str:
    """Why the notice's action can no longer be done (empty while it can)."""
    if notice.deadline is None or now < notice.deadline:
        return ""
    name = notice.facts.get("name") or _("the subscription")
    if notice.kind is Kind.SEAT_WINDOW:
        return _(
            "Too late: the 7-day window of these seats closed, so Microsoft no longer takes them back "
            "with a refund. You can schedule fewer seats of {name} for its renewal from "
            "**subscriptions**.",
            name=name,
        )
    return _(
        "Too late: Microsoft locks {name} for changes in the 24 hours before it renews, so it "
        "renews as it is. You can change its seats within 7 days after the renewal.",
        name=name,
    )


async def _admins(services: Services, organisation_id: int) -> list[MemberView]:
    org = await services.organisations.get_by_id(organisation_id)
    return [m for m in org.members if Role.ADMIN.value in m.roles]
