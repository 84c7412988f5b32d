"""What every task dialog shares: "cancel" and "help" work at any step, card submits are read
through one prompt, and the caller and domain errors are handled the same way everywhere.

Card-driven tasks (a list with actions per row) are `CardFlow`s declared as two tables, read like
python-telegram-bot's ConversationHandler or the Agents SDK's one handler per verb:

    screens = {LIST: render_list, QUANTITY: render_quantity}          # screen -> render(turn) -> card
    verbs = {
        cards.QUANTITY: Verb(QUANTITY, keep=("subscription_id",)),   # a button that only navigates
        cards.CONFIRM_QUANTITY: Verb(LIST, confirm_quantity, on_error=QUANTITY,
                                     parse=QuantityChange.of, keep=("subscription_id", "quantity"), done=True),
    }

A click is read once (`parse`: the payload's ids, quantities and e-tags into a typed value, or a
clear message and nothing done), handed to its action (a service call), and the verb's next screen
is shown — with the action's notice, or on `on_error` with the service's message when it refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, TypeVar

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
from services.errors import DomainError, InvalidInput
from services.i18n import N_, _

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


def stored(step: WaterfallStepContext, key: str) -> dict[str, Any]:
    """A dict a step kept in `step.values` for the next step ({} when there is none)."""
    item = step.values.get(key)
    return dict(item) if isinstance(item, dict) else {}


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

    title = N_("this task")  # `N_`-marked: translated where shown
    shortcuts: tuple[tuple[str, str], ...] = ()  # typed look-ups (not translated) and what they show (`N_`)

    def __init__(self, dialog_id: str, steps: Sequence[WaterfallStep]) -> None:
        super().__init__(dialog_id)
        self.steps_id = f"{dialog_id}.steps"  # the waterfall: replace_dialog(steps_id, …) shows the next card
        self.add_dialog(WaterfallDialog(self.steps_id, list(steps)))  # the first one added: where the task starts
        self.add_dialog(TextPrompt(CARD_PROMPT, _card_submit_validator))

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
            await inner_dc.context.send_activity(_("Cancelled {task}. Nothing more was changed.", task=_(self.title)))
            inner_dc.context.turn_state[TASK_CLOSED_KEY] = _("Cancelled.")
            return await inner_dc.cancel_all_dialogs()
        if words in HELP_WORDS:
            await inner_dc.context.send_activity(
                card_activity(
                    build_help_card(
                        (), in_task=_(self.title), shortcuts=tuple((typed, _(what)) for typed, what in self.shortcuts)
                    )
                )
            )
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return None

    @staticmethod
    def prompt_card(card: Mapping[str, Any], retry_text: str = "") -> PromptOptions:
        retry = retry_text or _("Please use the card above, or type cancel.")
        return PromptOptions(prompt=card_activity(card), retry_prompt=MessageFactory.text(retry))


# --- card flows: a task declared as a table of screens and verbs ---------------------------------

View = dict[str, Any]  # what a screen shows: plain values (ids, entered text), kept in the dialog's state
END = ""  # the "next screen" of a verb that ends the task
HERE = "."  # the screen the clicked card was on (a verb offered on several screens)
SCREEN, ERROR, ERROR_FIELD, NOTICE, CARD = "screen", "error", "error_field", "notice", "card"
ONE_SHOT = "one_shot"  # a view started for one change: the task ends with that change's outcome
P = TypeVar("P")


@dataclass(frozen=True)
class Turn:
    """What a screen or an action gets: this turn, the caller the bot resolved, the view on screen."""

    context: TurnContext
    caller: Caller
    view: View


@dataclass(frozen=True)
class Next:
    """An action's own choice of the next screen (a result card, one user) instead of its verb's."""

    screen: str
    view: View = field(default_factory=dict)


Render = Callable[[Turn], Awaitable[Mapping[str, Any]]]
Outcome = str | Next | None  # a notice shown on the verb's next screen, another screen, or neither
Action = Callable[[Turn, P], Awaitable[Outcome]]


def no_payload(_payload: Mapping[str, Any]) -> None:
    """The parser of a button that carries nothing its action needs."""
    return None


@dataclass(frozen=True)
class Verb(Generic[P]):
    """One button of a card flow: `parse` its payload once, run `action`, show `next`."""

    next: str  # the screen after the action (END: the task ends, the action's text is said)
    action: Action[P] | None = None  # (turn, parsed) -> Outcome; None: the button only navigates
    on_error: str | None = None  # the screen a refusal is shown on (None: the flow's home screen; HERE)
    parse: Callable[[Mapping[str, Any]], P] = no_payload  # type: ignore[assignment]
    keep: tuple[str, ...] = ()  # payload fields the next screen shows again (ids, what was typed)
    done: bool = False  # once carried out, the clicked card becomes a record of it
    on: frozenset[str] = frozenset()  # the screens that offer it (empty: any); elsewhere it is stale


def kept(payload: Mapping[str, Any], names: Sequence[str], limit: int = 2000) -> View:
    """The payload's `names` as bounded text (a multi-select's list stays a list of text)."""
    view: View = {}
    for name in names:
        item = payload.get(name)
        if isinstance(item, list):
            view[name] = [str(part)[:limit] for part in item[:200]]
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            view[name] = str(item)[:limit]
        elif isinstance(item, bool):
            view[name] = item
    return view


async def shown_card(turn: Turn) -> Mapping[str, Any]:
    """The `card` screen: a card an action already built (an outcome, a one-line command's question)."""
    return dict(turn.view[CARD])


class CardFlow(TaskDialog):
    """A card-driven task as two tables: `screens` (screen -> render) and `verbs` (verb -> `Verb`).

    One card is shown at a time; each submit is parsed, acted on and answered with the next card.
    A refused payload or a service's `DomainError` re-shows `on_error` with its message and the
    `keep` fields as entered (`retry_errors`; any other domain error goes to the home screen); a
    screen that cannot be rendered any more (the subscription went away) falls back to home.
    """

    home: ClassVar[str] = "list"
    fallback: ClassVar[str | None] = None  # an unknown verb (an old card) is read as this one (None: shown again)
    retry_errors: ClassVar[tuple[type[DomainError], ...]] = (DomainError,)
    sticky: ClassVar[tuple[str, ...]] = (ONE_SHOT,)  # view keys kept from screen to screen
    carries_view: ClassVar[bool] = False  # a wizard: every choice so far goes on to the next screen
    token_key: ClassVar[str | None] = None  # each card shown gets a new token; an older card's click is stale
    stale_message: ClassVar[str] = ""  # said on the current card when a click is stale (translated when shown)

    def __init__(self, dialog_id: str, start: str | None = None) -> None:
        super().__init__(dialog_id, [self.show_step, self.handle_step])
        self._start = start or self.home

    # The tables, declared by each task (its constructor binds the services it uses).
    screens: Mapping[str, Render]
    verbs: Mapping[str, Verb[Any]]

    async def opening(self, _step: WaterfallStepContext, _view: View, /) -> DialogTurnResult | None:
        """Before a screen is shown: a task may answer otherwise (e.g. privately) and end."""
        return None

    async def show_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        view: View = dict(step.options) if isinstance(step.options, dict) else {SCREEN: self._start}
        ended = await self.opening(step, view)
        if ended is not None:
            return ended
        if self.token_key:
            view[self.token_key] = uuid.uuid4().hex
        turn = Turn(step.context, caller_of(step.context), view)
        try:
            card = await self.screens[view.get(SCREEN) or self.home](turn)
        except DomainError as problem:
            if view.get(SCREEN, self.home) == self.home:
                raise
            view = {**self._sticky(view), SCREEN: self.home, ERROR: problem.message}
            card = await self.screens[self.home](Turn(step.context, turn.caller, view))
        step.values["view"] = view
        return await step.prompt(CARD_PROMPT, self.prompt_card(card))

    async def handle_step(self, step: WaterfallStepContext) -> DialogTurnResult:
        payload: Mapping[str, Any] = step.result if isinstance(step.result, dict) else {}
        current: View = stored(step, "view") or {SCREEN: self._start}
        name = payload.get("verb")
        verb = self.verbs.get(name) if isinstance(name, str) else None
        if verb is None and self.fallback is not None:  # not a button of this task (an old card)
            verb, payload = self.verbs[self.fallback], {}
        here = str(current.get(SCREEN) or self.home)
        stale = bool(self.token_key) and payload.get(self.token_key or "") != current.get(self.token_key or "")
        if verb is None or stale or (verb.on and here not in verb.on):  # an old card: show where it stands
            said = _(self.stale_message) if self.stale_message else None
            return await self._show(step, {**self._carried(current, everything=True), SCREEN: here, ERROR: said})
        turn = Turn(step.context, caller_of(step.context), current)
        entered = kept(payload, verb.keep)
        try:
            parsed = verb.parse(payload)  # also for a button that only navigates: a bad id is refused here
            outcome = await verb.action(turn, parsed) if verb.action else None
        except DomainError as refused:
            retry = isinstance(refused, self.retry_errors)
            screen = (verb.on_error or self.home) if retry else self.home
            error_field = refused.field if isinstance(refused, InvalidInput) else None
            return await self._show(
                step,
                {
                    **self._carried(current),
                    **entered,
                    SCREEN: here if screen == HERE else screen,
                    ERROR: refused.message,
                    ERROR_FIELD: error_field,
                },
            )
        if verb.done:
            card_done(step.context)
        if isinstance(outcome, Next):  # the action chose the next screen itself
            return await self._show(step, {**self._carried(current), **outcome.view, SCREEN: outcome.screen})
        if verb.next == END or (verb.done and current.get(ONE_SHOT) and isinstance(outcome, str)):
            if outcome:
                await step.context.send_activity(outcome)
            return await step.end_dialog(outcome or None)
        return await self._show(step, {**self._carried(current), **entered, SCREEN: verb.next, NOTICE: outcome})

    def _sticky(self, view: View) -> View:
        return {key: view[key] for key in self.sticky if key in view}

    def _carried(self, view: View, *, everything: bool = False) -> View:
        """What goes on to the next screen: the sticky keys, or (a wizard, or the same screen again)
        the whole view but its messages."""
        if not (everything or self.carries_view):
            return self._sticky(view)
        return {key: item for key, item in view.items() if key not in (ERROR, ERROR_FIELD, NOTICE, self.token_key)}

    async def _show(self, step: WaterfallStepContext, view: View) -> DialogTurnResult:
        return await step.replace_dialog(self.steps_id, {key: item for key, item in view.items() if item is not None})
