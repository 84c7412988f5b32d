"""Manage subscriptions ("subscriptions"): one card at a time, each submit decides the next card.

Steps:
1. show_step   — render the screen named in the options (the list, a quantity form, a cost preview,
                 add-ons, cancel, auto-renew, suspend request, reactivate) and wait for its submit;
2. handle_step — act on the submit (services check organisation, role and Microsoft's rules) and
                 start again with the next screen; "Done" ends the task.

Bad input comes back on the same card with what was entered; a card that went stale (the
subscription changed meanwhile) is reloaded and the admin is asked again.
"""

from __future__ import annotations

import uuid
from typing import Any

from microsoft_agents.hosting.dialogs import DialogTurnResult, WaterfallStepContext

from cards import subscriptions as cards
from dialogs.approval_delivery import post_request
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_done
from services import formatting
from services.container import Services
from services.errors import DomainError, InvalidInput
from services.subscriptions import StaleSubscription

DIALOG_ID = "subscriptions_dialog"
TITLE = "Subscriptions"


def _key() -> str:
    return uuid.uuid4().hex


class SubscriptionsDialog(TaskDialog):
    title = TITLE

    def __init__(self, services: Services) -> None:
        super().__init__(DIALOG_ID, [self.show_step, self.handle_step])
        self._services = services

    # --- 1. show ------------------------------------------------------------------------------

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: dict[str, Any] = dict(step.options or {}) if isinstance(step.options, dict) else {}
        card = await self._render(step, options)
        return await step.prompt(CARD_PROMPT, self.prompt_card(card))

    async def _render(self, step: WaterfallStepContext, options: dict[str, Any]) -> dict[str, Any]:
        caller = caller_of(step.context)
        screen = options.get("screen", "list")
        sid = options.get("subscription_id")
        subs, changes = self._services.subscriptions, self._services.subscription_changes
        error, entered = str(options.get("error", "")), options.get("entered") or {}
        try:
            if screen == "quantity":
                view = await subs.get(caller, sid)
                return cards.build_quantity_card(view, entered=str(entered.get("quantity", "")), error=error)
            if screen == "preview":
                try:
                    plan = await changes.plan_quantity(caller, sid, entered.get("quantity"))
                except InvalidInput as bad:
                    view = await subs.get(caller, sid)
                    return cards.build_quantity_card(view, entered=str(entered.get("quantity", "")), error=bad.message)
                return cards.build_quantity_preview_card(plan, _key())
            if screen == "addons":
                base = await subs.get(caller, sid)
                _, offers = await changes.addons(caller, sid)
                return cards.build_addons_card(base, offers, _key(), error=error, entered=entered)
            if screen == "cancel":
                return cards.build_cancel_card(await changes.plan_cancel(caller, sid), _key())
            if screen == "autorenew":
                return cards.build_autorenew_card(await subs.get(caller, sid), _key())
            if screen == "suspend":
                view = await subs.get(caller, sid)
                return cards.build_suspend_request_card(view, entered=str(entered.get("reason", "")), error=error)
            if screen == "reactivate":
                return cards.build_reactivate_card(await subs.get(caller, sid), _key())
        except DomainError as problem:
            options = {"screen": "list", "notice": problem.message, "page": options.get("page", 0)}
        page = await subs.page(caller, page=int(options.get("page") or 0), refresh=bool(options.get("refresh")))
        notice = str(options.get("notice") or "")
        if notice:
            page = type(page)(**{**page.__dict__, "notice": notice + (" " + page.notice if page.notice else "")})
        return cards.build_subscriptions_card(page)

    # --- 2. handle ----------------------------------------------------------------------------

    async def handle_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        value: dict[str, Any] = step.result if isinstance(step.result, dict) else {}
        verb = value.get("verb")
        sid = value.get("subscription_id")
        caller = caller_of(step.context)
        if verb == cards.CLOSE:
            await step.context.send_activity("Done. Type **subscriptions** to open them again.")
            return await step.end_dialog()
        screens = {
            cards.QUANTITY: "quantity",
            cards.ADDONS: "addons",
            cards.CANCEL: "cancel",
            cards.AUTORENEW: "autorenew",
            cards.SUSPEND: "suspend",
            cards.REACTIVATE: "reactivate",
        }
        if verb in screens:
            return await self._next(step, screen=screens[str(verb)], subscription_id=sid)
        if verb == cards.PAGE:
            return await self._next(step, page=_int(value.get("page")))
        if verb == cards.REFRESH:
            return await self._next(step, page=_int(value.get("page")), refresh=True)
        if verb == cards.PREVIEW:
            return await self._next(
                step, screen="preview", subscription_id=sid, entered={"quantity": str(value.get("quantity", ""))}
            )
        try:
            message = await self._act(step, caller, verb, value)
        except StaleSubscription as stale:
            return await self._next(
                step,
                screen="quantity" if verb in (cards.CONFIRM_QUANTITY, cards.CONFIRM_SCHEDULE) else "list",
                subscription_id=sid,
                error=stale.message,
                notice=stale.message,
                entered={"quantity": str(value.get("quantity", ""))},
            )
        except InvalidInput as bad:
            if verb == cards.ORDER_ADDON:
                entered = {"addon": str(value.get("addon", "")), "quantity": str(value.get("quantity", ""))}
                return await self._next(step, screen="addons", subscription_id=sid, error=bad.message, entered=entered)
            if verb == cards.SEND_SUSPEND:
                entered = {"reason": str(value.get("reason", ""))}
                return await self._next(step, screen="suspend", subscription_id=sid, error=bad.message, entered=entered)
            if verb in (cards.CONFIRM_QUANTITY, cards.CONFIRM_SCHEDULE):
                return await self._next(
                    step,
                    screen="quantity",
                    subscription_id=sid,
                    error=bad.message,
                    entered={"quantity": str(value.get("quantity", ""))},
                )
            return await self._next(step, notice=bad.message)
        except DomainError as problem:
            return await self._next(step, notice=problem.message)
        if message is None:  # "Back", or not a verb of this task (e.g. an old card): the list again
            return await self._next(step)
        card_done(step.context)
        return await self._next(step, notice=message)

    async def _act(self, step: WaterfallStepContext, caller: Any, verb: Any, value: dict[str, Any]) -> str | None:
        changes = self._services.subscription_changes
        sid = value.get("subscription_id")
        key = value.get("request_key")
        if verb == cards.CONFIRM_QUANTITY:
            return (
                await changes.change_quantity(caller, sid, value.get("quantity"), etag=value.get("etag"), key=key)
            ).message
        if verb == cards.CONFIRM_SCHEDULE:
            result = await changes.schedule_quantity(
                caller, sid, value.get("quantity"), etag=value.get("etag"), key=key
            )
            return result.message
        if verb == cards.CONFIRM_CANCEL:
            return (await changes.cancel(caller, sid, etag=value.get("etag"), key=key)).message
        if verb == cards.CONFIRM_AUTORENEW:
            return (await changes.set_auto_renew(caller, sid, value.get("enabled") is True, key=key)).message
        if verb == cards.CONFIRM_REACTIVATE:
            return (await changes.reactivate(caller, sid, key=key)).message
        if verb == cards.ORDER_ADDON:
            prices = value.get("prices")
            shown = prices.get(str(value.get("addon") or "").upper(), "") if isinstance(prices, dict) else ""
            result = await changes.order_addon(
                caller, sid, value.get("addon"), value.get("quantity"), key=key, shown_price=shown
            )
            return result.message
        if verb == cards.SEND_SUSPEND:
            approval, created = await self._services.approvals.request_suspension(caller, sid, value.get("reason"))
            if not created:
                return f"A suspension of {approval.subscription_name} is already waiting for an approver."
            reached, in_channel = await post_request(step.context, self._services, approval)
            if not reached and not in_channel:
                return (
                    f"I recorded your request to suspend {approval.subscription_name}, but no approver of your "
                    "organisation has chatted with me yet, so nobody could be asked. Ask an approver to say hi "
                    "to the bot, or your reseller to set an approvals channel."
                )
            asked = formatting.plural(reached, "approver", "approvers")
            where = f"I asked {asked}" if reached else "I posted the request"
            if in_channel:
                where += " in their chats and in the approvals channel" if reached else " in the approvals channel"
            return f"{where} to confirm suspending {approval.subscription_name}. I will tell you when one decides."
        return None

    async def _next(self, step: WaterfallStepContext, **options: Any) -> DialogTurnResult:
        return await step.replace_dialog(
            self.initial_dialog_id or self.id, {key: value for key, value in options.items() if value is not None}
        )


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0
