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

import dataclasses
import uuid
from typing import Any

from cards import subscriptions as cards
from dialogs.approval_delivery import post_request, refresh_request
from dialogs.base import CARD_PROMPT, TaskDialog, caller_of, card_done
from dialogs.sdk import DialogTurnResult, WaterfallStepContext
from dialogs.spending import ask_an_approver
from services import formatting
from services.container import Services
from services.errors import DomainError, InvalidInput
from services.payloads import page_number
from services.spending import ApprovalNeeded
from services.subscriptions import ApprovalView, StaleSubscription
from services.subscriptions.approvals import ADDON, SEATS

DIALOG_ID = "subscriptions_dialog"
TITLE = "Subscriptions"
ONE_SHOT = "one_shot"  # options: end with the outcome of the first change (a one-line command)


def _key() -> str:
    return uuid.uuid4().hex


def _one_shot(step: WaterfallStepContext) -> bool:
    return isinstance(step.options, dict) and step.options.get(ONE_SHOT) is True


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
            if screen == "card":  # a screen already built (a one-line command's confirmation)
                return dict(options["card"])
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
            options = {"screen": "list", "problem": problem.message, "page": options.get("page", 0)}
        page = await subs.page(caller, page=int(options.get("page") or 0), refresh=bool(options.get("refresh")))
        notice, problem = str(options.get("notice") or ""), str(options.get("problem") or "")
        if notice or problem:
            problem = " ".join(part for part in (problem, page.problem) if part)
            page = dataclasses.replace(page, notice=notice, problem=problem)
        requests = await self._services.approvals.open_requests(caller.organisation_id)
        return cards.build_subscriptions_card(page, requests)

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
            return await self._next(step, page=page_number(value.get("page"), 0))
        if verb == cards.REFRESH:
            return await self._next(step, page=page_number(value.get("page"), 0), refresh=True)
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
                problem=stale.message,
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
            return await self._next(step, problem=bad.message)
        except DomainError as problem:
            return await self._next(step, problem=problem.message)
        if message is None:  # "Back", or not a verb of this task (e.g. an old card): the list again
            return await self._next(step)
        card_done(step.context)
        if _one_shot(step):  # started by a one-line command: its outcome, not the whole list
            await step.context.send_activity(message)
            return await step.end_dialog(message)
        return await self._next(step, notice=message)

    async def _act(self, step: WaterfallStepContext, caller: Any, verb: Any, value: dict[str, Any]) -> str | None:
        changes = self._services.subscription_changes
        sid = value.get("subscription_id")
        key = value.get("request_key")
        if verb == cards.CONFIRM_QUANTITY:
            try:
                result = await changes.change_quantity(
                    caller, sid, value.get("quantity"), etag=value.get("etag"), key=key
                )
            except ApprovalNeeded as needed:  # more seats above the organisation's spending policy
                change = {"subscription_id": str(sid), "quantity": str(value.get("quantity")), "key": str(key)}
                return await ask_an_approver(
                    step.context, self._services, caller, needed, kind=SEATS, subscription_id=str(sid), change=change
                )
            return result.message
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
        if verb == cards.UNSCHEDULE:  # a second click finds nothing scheduled any more, and says so
            return (await changes.withdraw_schedule(caller, sid, key=_key())).message
        if verb == cards.ORDER_ADDON:
            prices = value.get("prices")
            shown = prices.get(str(value.get("addon") or "").upper(), "") if isinstance(prices, dict) else ""
            try:
                result = await changes.order_addon(
                    caller, sid, value.get("addon"), value.get("quantity"), key=key, shown_price=shown
                )
            except ApprovalNeeded as needed:
                change = {
                    "subscription_id": str(sid),
                    "addon": str(value.get("addon") or ""),
                    "quantity": str(value.get("quantity")),
                    "key": str(key),
                }
                return await ask_an_approver(
                    step.context, self._services, caller, needed, kind=ADDON, subscription_id=str(sid), change=change
                )
            return result.message
        if verb == cards.SEND_SUSPEND:
            approval, created = await self._services.approvals.request_suspension(caller, sid, value.get("reason"))
            if not created:
                return f"A suspension of {approval.subscription_name} is already waiting for an approver."
            reached, in_channel = await post_request(step.context, self._services, approval)
            return await self._who_was_asked(approval, reached, in_channel)
        if verb == cards.WITHDRAW_SUSPEND:
            decision = await self._services.approvals.withdraw(caller, value.get("approval_id"))
            if decision.decided_now:
                await refresh_request(step.context, self._services, decision.approval)
            return decision.message
        return None

    async def _who_was_asked(self, approval: ApprovalView, reached: int, in_channel: bool) -> str:
        """Who was asked to decide — or, when nobody could be, who can and what each must do."""
        if reached or in_channel:
            chats = formatting.plural(reached, "approver", "approvers") + (
                " in a 1:1 chat" if reached == 1 else " in their 1:1 chats"
            )
            if reached and in_channel:
                where = f"I asked {chats} and posted the request in the approvals channel"
            else:
                where = f"I asked {chats}" if reached else "I posted the request in the approvals channel"
            return f"{where} to confirm suspending {approval.subscription_name}. I will tell you when one decides."
        approvers = [
            a
            for a in await self._services.approvals.approvers(approval.organisation_id)
            if a.member_id != approval.requested_by_member_id
        ]
        until = formatting.datetime_utc(approval.expires_at)
        if not approvers:
            return (
                f"I recorded your request to suspend {approval.subscription_name}, but your organisation has no "
                "approver who could decide it. Ask your reseller to give someone the approver role; the request "
                f"waits until {until}, and you can withdraw it from the list."
            )
        names = ", ".join(f"{a.name} ({a.email})" if a.email and a.email != a.name else a.name for a in approvers)
        return (
            f"I recorded your request to suspend {approval.subscription_name}, but none of your approvers has "
            f"chatted with me yet, so I could not ask anyone: {names}. Ask one of them to open the CSP "
            "self-service app in Teams and say hi — I then send them the request at once. It waits until "
            f"{until}; you can withdraw it from the list."
        )

    async def _next(self, step: WaterfallStepContext, **options: Any) -> DialogTurnResult:
        if _one_shot(step):
            options[ONE_SHOT] = True
        return await step.replace_dialog(
            self.initial_dialog_id or self.id, {key: value for key, value in options.items() if value is not None}
        )
