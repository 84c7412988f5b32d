"""What every task dialog shares: "cancel" and "help" work at any step, card submits are read
through one prompt, and the caller and domain errors are handled the same way everywhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import CardFactory, MessageFactory, TurnContext

from cards.common import build_help_card
from dialogs.sdk import (
    ComponentDialog,
    DialogContext,
    DialogTurnResult,
    DialogTurnStatus,
    PromptOptions,
    PromptValidatorContext,
    TextPrompt,
    WaterfallDialog,
    WaterfallStepContext,
)
from services.access import Caller

WaterfallStep = Callable[[WaterfallStepContext], Awaitable[DialogTurnResult]]
CALLER_KEY = "csp.caller"
# A task says what became of the card that was clicked (the bot turns that card into a record):
CARD_DONE_KEY = "csp.card_done"  # the action the card offered was carried out (value: what, or "")
TASK_CLOSED_KEY = "csp.task_closed"  # the task was cancelled or stopped (value: the line to show)
CARD_PROMPT = "card_prompt"
CANCEL_WORDS = frozenset({"cancel", "stop", "quit", "exit"})
HELP_WORDS = frozenset({"help", "?"})


def caller_of(context: TurnContext) -> Caller:
    """The caller resolved by the bot for this turn (never taken from a payload)."""
    caller = context.turn_state.get(CALLER_KEY)
    if not isinstance(caller, Caller):
        raise RuntimeError("dialog ran without a resolved caller")
    return caller


def normalised_text(activity: Activity) -> str:
    return " ".join((activity.text or "").strip().lower().split()).rstrip(".!")


def card_done(context: TurnContext, outcome: str = "") -> None:
    """Mark the clicked card's action as carried out: the card becomes a read-only record of it
    (`outcome`, or the title of the button that was clicked)."""
    context.turn_state[CARD_DONE_KEY] = outcome


def card_activity(card: Mapping[str, Any]) -> Activity:
    return MessageFactory.attachment(CardFactory.adaptive_card(dict(card)))


async def _card_submit_validator(prompt_context: PromptValidatorContext) -> bool:
    """Accept a card submit (its `value` becomes the step's result): an object whose `verb` is a
    string, as every card of ours sends. Typed text, or any other value, re-prompts."""
    value = prompt_context.context.activity.value
    if isinstance(value, dict) and isinstance(value.get("verb"), str) and value["verb"] != "command":
        prompt_context.recognized.value = value
        return True
    return False


class TaskDialog(ComponentDialog):
    """Base of every task: its waterfall of `*_step`s, cancel/help at any step, and `prompt_card`
    for steps that wait for a card submit."""

    title = "this task"
    shortcuts: tuple[tuple[str, str], ...] = ()  # typed look-ups the task's help lists

    def __init__(self, dialog_id: str, steps: Sequence[WaterfallStep]) -> None:
        super().__init__(dialog_id)
        waterfall_id = f"{dialog_id}.steps"
        self.add_dialog(WaterfallDialog(waterfall_id, list(steps)))
        self.add_dialog(TextPrompt(CARD_PROMPT, _card_submit_validator))
        self.initial_dialog_id = waterfall_id

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        interrupted = await self._interrupt(inner_dc)
        if interrupted is not None:
            return interrupted
        return await super().on_continue_dialog(inner_dc)

    async def _interrupt(self, inner_dc: DialogContext) -> DialogTurnResult | None:
        activity = inner_dc.context.activity
        if activity.value is not None:
            return None
        words = normalised_text(activity)
        if words in CANCEL_WORDS:
            await inner_dc.context.send_activity(f"Cancelled {self.title}. Nothing more was changed.")
            inner_dc.context.turn_state[TASK_CLOSED_KEY] = "Cancelled."
            return await inner_dc.cancel_all_dialogs()
        if words in HELP_WORDS:
            await inner_dc.context.send_activity(
                card_activity(build_help_card((), in_task=self.title, shortcuts=self.shortcuts))
            )
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return None

    @staticmethod
    def prompt_card(
        card: Mapping[str, Any], retry_text: str = "Please use the card above, or type cancel."
    ) -> PromptOptions:
        return PromptOptions(prompt=card_activity(card), retry_prompt=MessageFactory.text(retry_text))
