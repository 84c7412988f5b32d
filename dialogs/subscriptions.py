"""Manage subscriptions ("subscriptions"): a card flow — one card at a time, each click is
"verb → service → next card", declared in `SubscriptionsDialog.verbs`.

Screens: the list, a quantity form and its cost preview, add-ons, cancel, auto-renew, a
suspension request, reactivate (and `card`: a one-line command's confirmation, already built).

Bad input comes back on the same card with what was entered; a card that went stale (the
subscription changed meanwhile) is reloaded and the admin is asked again. Started by a one-line
command (`ONE_SHOT`), the task ends with the outcome of that one change.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cards import subscriptions as cards
from dialogs.approval_delivery import ApprovalPosting
from dialogs.base import CARD, END, ERROR, NOTICE, ONE_SHOT, CardFlow, Next, Outcome, Turn, Verb, shown_card
from dialogs.spending import ask_an_approver
from services import formatting
from services.errors import InvalidInput, NotFound
from services.i18n import N_, _, ngettext
from services.payloads import page_number, row_id, token
from services.spending import ApprovalNeeded
from services.subscriptions import ApprovalService, ApprovalView, StaleSubscription, SubscriptionChanges
from services.subscriptions import SubscriptionService as SubscriptionListing
from services.subscriptions.approvals import ADDON, SEATS
from services.subscriptions.approvals import NOT_YOURS as NOT_YOUR_REQUEST
from services.subscriptions.changes import OUT_OF_DATE, parse_quantity
from services.subscriptions.common import NOT_YOURS

__all__ = ["DIALOG_ID", "ONE_SHOT", "TITLE", "SubscriptionsDialog"]

DIALOG_ID = "subscriptions_dialog"
TITLE = N_("Subscriptions")
LIST, QUANTITY, PREVIEW, ADDONS = "list", "quantity", "preview", "addons"
CANCEL, AUTORENEW, SUSPEND, REACTIVATE = "cancel", "autorenew", "suspend", "reactivate"
SID = "subscription_id"


def _key() -> str:
    return uuid.uuid4().hex


# --- what a card sends back, read once -------------------------------------------------------------


def _subscription_id(payload: Mapping[str, Any]) -> str:
    """A subscription id as a card carries it (the services check it is the caller's)."""
    value = payload.get(SID)
    if not isinstance(value, str) or not value.strip() or len(value) > 64:
        raise NotFound(_(NOT_YOURS))
    return value.strip()


def _etag(payload: Mapping[str, Any]) -> str:
    return token(payload.get("etag"), max_length=200, out_of_date=_(OUT_OF_DATE), required=False)


def _request_key(payload: Mapping[str, Any]) -> str:
    return token(payload.get("request_key"), max_length=150, out_of_date=_(OUT_OF_DATE))


@dataclass(frozen=True)
class Target:
    subscription_id: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Target:
        return cls(_subscription_id(payload))


@dataclass(frozen=True)
class QuantityEntry:
    """The quantity form: a whole number of seats (the preview checks Microsoft's bounds)."""

    subscription_id: str
    quantity: int

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> QuantityEntry:
        return cls(_subscription_id(payload), parse_quantity(payload.get("quantity")))


@dataclass(frozen=True)
class QuantityChange:
    """A confirmed preview: the seats, the e-tag the preview was made from, the card's request key."""

    subscription_id: str
    quantity: int
    etag: str
    key: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> QuantityChange:
        quantity, etag = parse_quantity(payload.get("quantity")), _etag(payload)
        return cls(_subscription_id(payload), quantity, etag, _request_key(payload))


@dataclass(frozen=True)
class Change:
    """A confirmation card's change of one subscription (reactivate, auto-renew on or off)."""

    subscription_id: str
    key: str
    enabled: bool = False

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Change:
        return cls(_subscription_id(payload), _request_key(payload), payload.get("enabled") is True)


@dataclass(frozen=True)
class Cancellation:
    """A confirmed cancel card: made from the subscription as Microsoft had it (its e-tag)."""

    subscription_id: str
    etag: str
    key: str

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Cancellation:
        etag = _etag(payload)
        return cls(_subscription_id(payload), etag, _request_key(payload))


@dataclass(frozen=True)
class AddonOrder:
    subscription_id: str
    addon: str
    quantity: int
    key: str
    shown_price: str  # the price the card showed for the chosen add-on (refused if it moved)

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> AddonOrder:
        quantity = parse_quantity(payload.get("quantity"))
        addon = str(payload.get("addon") or "")[:200]
        prices = payload.get("prices")
        shown = prices.get(addon.upper(), "") if isinstance(prices, dict) else ""
        return cls(_subscription_id(payload), addon, quantity, _request_key(payload), str(shown)[:200])


@dataclass(frozen=True)
class Suspension:
    subscription_id: str
    reason: str  # the service says when it is empty or too long

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Suspension:
        reason = payload.get("reason")
        return cls(_subscription_id(payload), reason[:4000] if isinstance(reason, str) else "")


@dataclass(frozen=True)
class Withdrawal:
    approval_id: int

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> Withdrawal:
        return cls(row_id(payload.get("approval_id"), _(NOT_YOUR_REQUEST)))


@dataclass(frozen=True)
class PageWanted:
    page: int
    refresh: bool

    @classmethod
    def of(cls, payload: Mapping[str, Any]) -> PageWanted:
        return cls(page_number(payload.get("page"), 0), payload.get("verb") == cards.REFRESH)


class SubscriptionsDialog(CardFlow):
    title = TITLE
    home = LIST
    fallback = cards.BACK  # an old card's button: the list again
    retry_errors = (InvalidInput, StaleSubscription)  # shown on the card; other refusals on the list

    def __init__(
        self,
        listing: SubscriptionListing,
        changes: SubscriptionChanges,
        approvals: ApprovalService,
        posting: ApprovalPosting,
    ) -> None:
        super().__init__(DIALOG_ID)
        self._listing, self._changes, self._approvals, self._posting = listing, changes, approvals, posting
        self.screens = {
            LIST: self._list,
            CARD: shown_card,
            QUANTITY: self._quantity,
            PREVIEW: self._preview,
            ADDONS: self._addons,
            CANCEL: self._cancel,
            AUTORENEW: self._autorenew,
            SUSPEND: self._suspend,
            REACTIVATE: self._reactivate,
        }
        opens = (SID,)
        self.verbs = {
            cards.CLOSE: Verb(END, self._close),
            cards.BACK: Verb(LIST),
            cards.PAGE: Verb(LIST, self._page, parse=PageWanted.of),
            cards.REFRESH: Verb(LIST, self._page, parse=PageWanted.of),
            cards.QUANTITY: Verb(QUANTITY, keep=opens),
            cards.ADDONS: Verb(ADDONS, keep=opens),
            cards.CANCEL: Verb(CANCEL, keep=opens),
            cards.AUTORENEW: Verb(AUTORENEW, keep=opens),
            cards.SUSPEND: Verb(SUSPEND, keep=opens),
            cards.REACTIVATE: Verb(REACTIVATE, keep=opens),
            cards.PREVIEW: Verb(PREVIEW, on_error=QUANTITY, parse=QuantityEntry.of, keep=(SID, "quantity")),
            cards.CONFIRM_QUANTITY: Verb(
                LIST, self._change_quantity, QUANTITY, QuantityChange.of, (SID, "quantity"), done=True
            ),
            cards.CONFIRM_SCHEDULE: Verb(
                LIST, self._schedule_quantity, QUANTITY, QuantityChange.of, (SID, "quantity"), done=True
            ),
            cards.CONFIRM_CANCEL: Verb(LIST, self._cancel_now, parse=Cancellation.of, done=True),
            cards.CONFIRM_AUTORENEW: Verb(LIST, self._set_auto_renew, parse=Change.of, done=True),
            cards.CONFIRM_REACTIVATE: Verb(LIST, self._reactivate_now, parse=Change.of, done=True),
            cards.UNSCHEDULE: Verb(LIST, self._unschedule, parse=Target.of, done=True),
            cards.ORDER_ADDON: Verb(
                LIST, self._order_addon, ADDONS, AddonOrder.of, (SID, "addon", "quantity"), done=True
            ),
            cards.SEND_SUSPEND: Verb(
                LIST, self._request_suspension, SUSPEND, Suspension.of, (SID, "reason"), done=True
            ),
            cards.WITHDRAW_SUSPEND: Verb(LIST, self._withdraw_suspension, parse=Withdrawal.of, done=True),
        }

    # --- screens: render(turn) -> card ---------------------------------------------------------------

    async def _list(self, turn: Turn) -> dict[str, Any]:
        view = turn.view
        page = await self._listing.page(
            turn.caller, page=page_number(view.get("page"), 0), refresh=view.get("refresh") is True
        )
        notice, problem = str(view.get(NOTICE) or ""), str(view.get(ERROR) or "")
        if notice or problem:
            problem = " ".join(part for part in (problem, page.problem) if part)
            page = dataclasses.replace(page, notice=notice, problem=problem)
        requests = await self._approvals.open_requests(turn.caller.organisation_id)
        return cards.build_subscriptions_card(page, requests)

    async def _quantity(self, turn: Turn) -> dict[str, Any]:
        view = await self._listing.get(turn.caller, turn.view.get(SID))
        return cards.build_quantity_card(
            view, entered=str(turn.view.get("quantity", "")), error=str(turn.view.get(ERROR, ""))
        )

    async def _preview(self, turn: Turn) -> dict[str, Any]:
        try:
            plan = await self._changes.plan_quantity(turn.caller, turn.view.get(SID), turn.view.get("quantity"))
        except InvalidInput as bad:  # outside Microsoft's bounds: the form again, as entered
            return await self._quantity(dataclasses.replace(turn, view={**turn.view, ERROR: bad.message}))
        return cards.build_quantity_preview_card(plan, _key())

    async def _addons(self, turn: Turn) -> dict[str, Any]:
        sid = turn.view.get(SID)
        base = await self._listing.get(turn.caller, sid)
        _row, offers = await self._changes.addons(turn.caller, sid)
        entered: dict[str, str] = {
            name: str(turn.view.get(name, "")) for name in ("addon", "quantity") if name in turn.view
        }
        return cards.build_addons_card(base, offers, _key(), error=str(turn.view.get(ERROR, "")), entered=entered)

    async def _cancel(self, turn: Turn) -> dict[str, Any]:
        return cards.build_cancel_card(await self._changes.plan_cancel(turn.caller, turn.view.get(SID)), _key())

    async def _autorenew(self, turn: Turn) -> dict[str, Any]:
        return cards.build_autorenew_card(await self._listing.get(turn.caller, turn.view.get(SID)), _key())

    async def _suspend(self, turn: Turn) -> dict[str, Any]:
        view = await self._listing.get(turn.caller, turn.view.get(SID))
        return cards.build_suspend_request_card(
            view, entered=str(turn.view.get("reason", "")), error=str(turn.view.get(ERROR, ""))
        )

    async def _reactivate(self, turn: Turn) -> dict[str, Any]:
        return cards.build_reactivate_card(await self._listing.get(turn.caller, turn.view.get(SID)), _key())

    # --- verbs: action(turn, parsed) -> notice | Next ------------------------------------------------

    async def _close(self, _turn: Turn, _nothing: None) -> Outcome:
        return _("Done. Type **subscriptions** to open them again.")

    async def _page(self, _turn: Turn, wanted: PageWanted) -> Outcome:
        return Next(LIST, {"page": wanted.page, "refresh": wanted.refresh or None})

    async def _change_quantity(self, turn: Turn, change: QuantityChange) -> Outcome:
        caller, sid = turn.caller, change.subscription_id
        try:
            result = await self._changes.change_quantity(caller, sid, change.quantity, etag=change.etag, key=change.key)
        except ApprovalNeeded as needed:  # more seats above the organisation's spending policy
            asked = {"subscription_id": sid, "quantity": str(change.quantity), "key": change.key}
            return await ask_an_approver(
                turn.context,
                self._approvals,
                self._posting,
                caller,
                needed,
                kind=SEATS,
                subscription_id=sid,
                change=asked,
            )
        return result.message

    async def _schedule_quantity(self, turn: Turn, change: QuantityChange) -> Outcome:
        result = await self._changes.schedule_quantity(
            turn.caller, change.subscription_id, change.quantity, etag=change.etag, key=change.key
        )
        return result.message

    async def _cancel_now(self, turn: Turn, change: Cancellation) -> Outcome:
        return (
            await self._changes.cancel(turn.caller, change.subscription_id, etag=change.etag, key=change.key)
        ).message

    async def _set_auto_renew(self, turn: Turn, change: Change) -> Outcome:
        result = await self._changes.set_auto_renew(turn.caller, change.subscription_id, change.enabled, key=change.key)
        return result.message

    async def _reactivate_now(self, turn: Turn, change: Change) -> Outcome:
        return (await self._changes.reactivate(turn.caller, change.subscription_id, key=change.key)).message

    async def _unschedule(self, turn: Turn, target: Target) -> Outcome:
        # A second click finds nothing scheduled any more, and says so.
        return (await self._changes.withdraw_schedule(turn.caller, target.subscription_id, key=_key())).message

    async def _order_addon(self, turn: Turn, order: AddonOrder) -> Outcome:
        caller, sid = turn.caller, order.subscription_id
        try:
            result = await self._changes.order_addon(
                caller, sid, order.addon, order.quantity, key=order.key, shown_price=order.shown_price
            )
        except ApprovalNeeded as needed:
            asked = {"subscription_id": sid, "addon": order.addon, "quantity": str(order.quantity), "key": order.key}
            return await ask_an_approver(
                turn.context,
                self._approvals,
                self._posting,
                caller,
                needed,
                kind=ADDON,
                subscription_id=sid,
                change=asked,
            )
        return result.message

    async def _request_suspension(self, turn: Turn, suspension: Suspension) -> Outcome:
        approval, created = await self._approvals.request_suspension(
            turn.caller, suspension.subscription_id, suspension.reason
        )
        if not created:
            return _(
                "A suspension of {subscription} is already waiting for an approver.",
                subscription=approval.subscription_name,
            )
        reached, in_channel = await self._posting.post(turn.context, approval)
        return await self._who_was_asked(approval, reached, in_channel)

    async def _withdraw_suspension(self, turn: Turn, withdrawal: Withdrawal) -> Outcome:
        decision = await self._approvals.withdraw(turn.caller, withdrawal.approval_id)
        if decision.decided_now:
            await self._posting.refresh(turn.context, decision.approval)
        return decision.message

    async def _who_was_asked(self, approval: ApprovalView, reached: int, in_channel: bool) -> str:
        """Who was asked to decide — or, when nobody could be, who can and what each must do."""
        name = approval.subscription_name
        if reached and in_channel:
            return ngettext(
                "I asked {n} approver in a 1:1 chat and posted the request in the approvals channel to confirm "
                "suspending {subscription}. I will tell you when one decides.",
                "I asked {n} approvers in their 1:1 chats and posted the request in the approvals channel to "
                "confirm suspending {subscription}. I will tell you when one decides.",
                reached,
                subscription=name,
            )
        if reached:
            return ngettext(
                "I asked {n} approver in a 1:1 chat to confirm suspending {subscription}. "
                "I will tell you when one decides.",
                "I asked {n} approvers in their 1:1 chats to confirm suspending {subscription}. "
                "I will tell you when one decides.",
                reached,
                subscription=name,
            )
        if in_channel:
            return _(
                "I posted the request in the approvals channel to confirm suspending {subscription}. "
                "I will tell you when one decides.",
                subscription=name,
            )
        approvers = [
            a
            for a in await self._approvals.approvers(approval.organisation_id)
            if a.member_id != approval.requested_by_member_id
        ]
        until = formatting.datetime_utc(approval.expires_at)
        if not approvers:
            return _(
                "I recorded your request to suspend {subscription}, but your organisation has no approver who "
                "could decide it. Ask your reseller to give someone the approver role; the request waits until "
                "{until}, and you can withdraw it from the list.",
                subscription=name,
                until=until,
            )
        names = ", ".join(f"{a.name} ({a.email})" if a.email and a.email != a.name else a.name for a in approvers)
        return _(
            "I recorded your request to suspend {subscription}, but none of your approvers has chatted with me "
            "yet, so I could not ask anyone: {names}. Ask one of them to open the CSP self-service app in Teams "
            "and say hi — I then send them the request at once. It waits until {until}; you can withdraw it "
            "from the list.",
            subscription=name,
            names=names,
            until=until,
        )
