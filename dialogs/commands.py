"""One-line commands ("add 5 seats to Business Standard", "assign E3 to diego"): straight to one
prefilled confirmation card, made and carried out by the full tasks themselves.

Steps:
1. resolve_step — read the command (services.commands.parser), resolve it against the organisation
                  (services.commands.service); then answer, ask which one (a short choice card),
                  or hand the confirmation to the task that owns it, started inside this one on its
                  confirmation screen: subscriptions (seats, cancel, auto-renew, suspend,
                  reactivate), add subscription (buy), users (assign, remove a licence). Nothing
                  changes before the confirm click, which that task handles as its own.
2. after_step   — a pick from the choice card resolves the command again with it; the owning task's
                  end ends the command.

Commands about the tenant's users said in a channel continue in the caller's 1:1 chat.
"""

from __future__ import annotations

import uuid
from typing import Any

from microsoft_agents.hosting.core import MessageFactory, TurnContext

from cards import commands as ui
from cards import subscriptions as subscription_cards
from dialogs.add_subscription import ORDER_DIALOG_ID, AddSubscriptionDialog
from dialogs.base import (
    CARD,
    CARD_PROMPT,
    ONE_SHOT,
    SCREEN,
    TASK_CLOSED_KEY,
    TaskDialog,
    caller_of,
    card_activity,
    card_done,
    stored,
)
from dialogs.catalogue import Task
from dialogs.private_replies import send_privately
from dialogs.sdk import DialogContext, DialogTurnResult, WaterfallStepContext
from dialogs.subscriptions import DIALOG_ID as SUBSCRIPTIONS_DIALOG_ID
from dialogs.subscriptions import SubscriptionsDialog
from dialogs.users import UsersDialog
from services.commands.parser import EXAMPLES, Command, Kind, NotUnderstood, looks_like_command, parse
from services.commands.people import FlowResult, OffboardingPlan, OnboardingPlan, PeopleFlows
from services.commands.service import (
    PRIVATE_KINDS,
    Answer,
    Choose,
    CommandService,
    LicenceAction,
    Outcome,
    Purchase,
    SubscriptionAction,
)
from services.errors import DomainError, InvalidInput
from services.i18n import N_, _
from services.roles import Permission
from services.subscriptions import CancelPlan, QuantityPlan

COMMAND_DIALOG_ID = "command_dialog"
USERS_CHILD_ID = "command_users"
TITLE = N_("Command")
WAITING = "waiting"


def typed_command(context: TurnContext) -> str:
    """The command as typed (case kept for names), or as a command button sends it."""
    value = context.activity.value
    if isinstance(value, dict) and value.get("verb") == "command":
        return " ".join(str(value.get("command", "")).split())
    return " ".join((context.activity.text or "").split())


def _is_personal(context: TurnContext) -> bool:
    conversation = context.activity.conversation
    return conversation is None or (conversation.conversation_type or "personal") == "personal"


class CommandDialog(TaskDialog):
    title = TITLE

    def __init__(
        self,
        commands: CommandService,
        people: PeopleFlows,
        subscriptions: SubscriptionsDialog,
        add_subscription: AddSubscriptionDialog,
        users: UsersDialog,
    ) -> None:
        """`subscriptions`, `add_subscription` and `users` (id `USERS_CHILD_ID`): the tasks whose
        confirmations the commands show; their clicks run their own code."""
        super().__init__(COMMAND_DIALOG_ID, [self.resolve_step, self.after_step])
        self._commands = commands
        self._people = people
        self.add_dialog(subscriptions)
        self.add_dialog(add_subscription)
        self.add_dialog(users)

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        value = inner_dc.context.activity.value
        if isinstance(value, dict) and value.get("verb") == ui.DROP:  # "Cancel"/"None of these" on any card
            await inner_dc.context.send_activity(_("Nothing was changed."))
            inner_dc.context.turn_state[TASK_CLOSED_KEY] = _("Cancelled.")
            return await inner_dc.cancel_all_dialogs()
        return await super().on_continue_dialog(inner_dc)

    # --- 1. resolve -----------------------------------------------------------------------------

    async def resolve_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: dict[str, Any] = dict(step.options) if isinstance(step.options, dict) else {}
        resume = options.get("resume")
        if isinstance(resume, dict):  # a flow's outcome with Retry: the same verb again
            step.values.update(
                text=options.get("text", ""), pins=options.get("pins", {}), **{WAITING: resume["waiting"]}
            )
            return await step.prompt(CARD_PROMPT, self.prompt_card(resume["card"]))
        text = str(options.get("text") or typed_command(step.context))
        pins: dict[str, str] = dict(options.get("pins") or {})
        parsed = parse(text)
        if " ".join(text.lower().split()) in ("commands", "one-line commands"):
            examples = Answer(
                _("Say what you want in one line, for example:"), lines=tuple(e for _unused, e in EXAMPLES)
            )
            await step.context.send_activity(card_activity(ui.build_answer_card(examples)))
            return await step.end_dialog()
        if isinstance(parsed, NotUnderstood):
            card = ui.build_did_you_mean_card(parsed.message, parsed.suggestions)
            await step.context.send_activity(card_activity(card))
            return await step.end_dialog()
        if parsed.kind in PRIVATE_KINDS and not _is_personal(step.context):
            caller = caller_of(step.context)
            await send_privately(step.context, caller, card_activity(ui.build_continue_privately_card(text)))
            return await step.end_dialog()
        step.values["text"], step.values["pins"] = text, pins
        caller = caller_of(step.context)
        if parsed.kind in (Kind.NEW_USER, Kind.OFFBOARD):
            return await self._people_flow(step, parsed, pins)
        outcome = await self._commands.resolve(caller, parsed, pins)
        return await self._show(step, parsed, outcome)

    async def _people_flow(
        self, step: WaterfallStepContext, command: Command, pins: dict[str, str]
    ) -> DialogTurnResult:
        """Joining or leaving: one card that asks once (planned by the same services that run it)."""
        caller = caller_of(step.context)
        try:
            if command.kind is Kind.NEW_USER:
                plan: Any = await self._people.plan_onboarding(caller, command.person, command.product, pins)
            else:
                plan = await self._people.plan_offboarding(caller, command.person, pins)
        except DomainError as error:
            return await self._show(step, command, Answer(error.message))
        if isinstance(plan, OnboardingPlan):
            step.values[WAITING] = ui.ONBOARD
            return await step.prompt(CARD_PROMPT, self.prompt_card(ui.build_onboard_card(plan, uuid.uuid4().hex)))
        if isinstance(plan, OffboardingPlan):
            step.values[WAITING] = ui.OFFBOARD
            return await step.prompt(CARD_PROMPT, self.prompt_card(ui.build_offboard_card(plan, uuid.uuid4().hex)))
        return await self._show(step, command, plan)

    async def _show(self, step: WaterfallStepContext, command: Command, outcome: Outcome) -> DialogTurnResult:
        if isinstance(outcome, Answer):
            if outcome.suggestions or outcome.lines or outcome.title:
                await step.context.send_activity(card_activity(ui.build_answer_card(outcome)))
            else:
                await step.context.send_activity(MessageFactory.text(outcome.text))
            return await step.end_dialog()
        if isinstance(outcome, Choose):
            step.values[WAITING] = "choice"
            return await step.prompt(CARD_PROMPT, self.prompt_card(ui.build_choice_card(outcome)))
        step.values[WAITING] = "task"
        note = getattr(outcome, "note", "")
        if command.corrected_from:
            said = _(
                "I read “{typed}” as **{corrected}**.", typed=command.corrected_from, corrected=command.corrected_to
            )
            note = f"{said} {note}".strip()
        if note:
            await step.context.send_activity(MessageFactory.text(note))
        if isinstance(outcome, SubscriptionAction):
            card = _subscription_card(outcome)
            return await step.begin_dialog(SUBSCRIPTIONS_DIALOG_ID, {SCREEN: CARD, CARD: card, ONE_SHOT: True})
        if isinstance(outcome, Purchase):
            quote = outcome.quote
            state = {
                SCREEN: "confirm",
                "category": outcome.category,
                "group": outcome.group,
                "product": f"{quote.product_id}:{quote.sku_id}",
                "plan": f"{quote.term_duration}:{quote.billing_cycle}",
                "quantity": str(quote.quantity),
                "quote": quote.as_dict(),
                "order_key": uuid.uuid4().hex,
            }
            return await step.begin_dialog(ORDER_DIALOG_ID, state)
        if isinstance(outcome, LicenceAction):
            card = ui.build_licence_confirm_card(outcome, uuid.uuid4().hex)
            return await step.begin_dialog(USERS_CHILD_ID, {SCREEN: CARD, CARD: card})
        raise TypeError(f"no confirmation for {type(outcome).__name__}")

    # --- 2. after -------------------------------------------------------------------------------

    async def after_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        waiting = step.values.get(WAITING)
        value = step.result if isinstance(step.result, dict) else {}
        if waiting in (ui.ONBOARD, ui.OFFBOARD):
            return await self._run_flow(step, str(waiting), value)
        if waiting != "choice":
            return await step.end_dialog(step.result)  # the owning task has ended
        slot, pin = str(value.get("slot", ""))[:20], str(value.get("pin", ""))[:100]
        if value.get("verb") != ui.PICK or not slot or not pin:
            await step.context.send_activity(_("Nothing was changed."))
            return await step.end_dialog()
        pins = {**stored(step, "pins"), slot: pin}
        return await step.replace_dialog(self.initial_dialog_id or self.id, {"text": step.values["text"], "pins": pins})

    async def _run_flow(self, step: WaterfallStepContext, waiting: str, value: dict[str, Any]) -> DialogTurnResult:
        if value.get("verb") != waiting:
            await step.context.send_activity(_("Nothing was changed."))
            return await step.end_dialog()
        try:
            result = await _run_flow_result(self._people, step, waiting, value)
        except DomainError as error:
            await step.context.send_activity(error.message)
            return await step.end_dialog()
        title = _("New user") if waiting == ui.ONBOARD else _("Offboarding")
        if result.ok:
            card_done(step.context)
            await step.context.send_activity(
                card_activity(ui.build_steps_card(_("{title}: done", title=title), result))
            )
            return await step.end_dialog()
        retry = {key: item for key, item in value.items() if not key.startswith("card")}
        card = ui.build_steps_card(_("{title}: not finished", title=title), result, retry)
        resume = {"waiting": waiting, "card": card}
        options = {"text": step.values.get("text", ""), "pins": step.values.get("pins", {}), "resume": resume}
        return await step.replace_dialog(self.initial_dialog_id or self.id, options)


async def _run_flow_result(
    people: PeopleFlows, step: WaterfallStepContext, waiting: str, value: dict[str, Any]
) -> FlowResult:
    caller = caller_of(step.context)
    key = str(value.get("request_key") or "")[:64]
    if not key:
        raise InvalidInput(_("This card is out of date; type the command again."))
    if waiting == ui.ONBOARD:
        return await people.onboard(caller, value, key)
    choices = {
        name.removeprefix("seat_"): str(choice)[:200]
        for name, choice in value.items()
        if name.startswith("seat_") and isinstance(choice, str)
    }
    return await people.offboard(caller, str(value.get("user_id") or "")[:64], choices, key)


def _subscription_card(action: SubscriptionAction) -> dict[str, Any]:
    """The subscriptions task's own confirmation card for the change."""
    key = uuid.uuid4().hex
    view, plan = action.view, action.plan
    if isinstance(plan, QuantityPlan):
        return subscription_cards.build_quantity_preview_card(plan, key)
    if isinstance(plan, CancelPlan):
        return subscription_cards.build_cancel_card(plan, key)
    if action.kind is Kind.SUSPEND:
        return subscription_cards.build_suspend_request_card(view)
    if action.kind is Kind.REACTIVATE:
        return subscription_cards.build_reactivate_card(view, key)
    return subscription_cards.build_autorenew_card(view, key)


def command_tasks(dialog: CommandDialog) -> list[Task]:
    return [
        Task(
            command="commands",
            title=_("One-line commands"),
            description=_("Say what you want in one line, e.g. add 5 seats to Business Standard"),
            dialog=dialog,
            permission=Permission.READ_SUBSCRIPTIONS,
            recognise=looks_like_command,
            examples=tuple(example for _unused, example in EXAMPLES),
        )
    ]


__all__ = ["COMMAND_DIALOG_ID", "CommandDialog", "command_tasks"]
