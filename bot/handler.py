"""CspBot: the activity handler. One turn = resolve the caller, run the dialog, save state.

Turn rules (see docs/architecture.md):
- every activity is made safe first (`bot/inputs.py`: control characters removed, over-long input
  refused with a message before any task sees it);
- an activity delivered again (same channel, conversation and activity id: Teams retries one that got
  no answer in time) is dropped without a reply, on whichever replica it arrives; only a turn cut off
  before it answered (the process stopped mid-turn) lets its re-delivery run. Activities without an
  id, and invokes that only read, are taken every time;
- turns of one conversation run one at a time in this process; across replicas the state's e-tag
  catches a concurrent turn, and the turn is retried once with fresh state;
- replies are held until the state is saved, so a retried turn never answers twice;
- a domain error is shown as its message and the dialog stays where it was; an unexpected error
  resets the conversation's dialog stack and shows a reference id (the log has the details).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import re
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from babel import Locale
from microsoft_agents.activity import (
    Activity,
    ActivityTypes,
    AdaptiveCardInvokeResponse,
    ChannelAccount,
    InvokeResponse,
    ResourceResponse,
)
from microsoft_agents.hosting.core import ActivityHandler, ConversationState, MessageFactory, TurnContext

from bot.identity import channel_identity, roster_email
from bot.inputs import sanitise_activity
from bot.live_cards import CardTurn, LiveCards
from bot.overload import LoopLag
from bot.proactive import ProactiveMessenger
from bot.storage import CREATE_ONLY, SqlStorage, StateConflictError
from cards.common import (
    CallerSummary,
    build_error_card,
    build_help_card,
    build_menu_card,
    build_not_registered_card,
    build_welcome_card,
)
from dialogs.base import CALLER_KEY, CARD_PROMPT, card_activity, normalised_text
from dialogs.catalogue import TaskCatalogue
from dialogs.private_replies import MESSENGER_KEY
from dialogs.sdk import ComponentDialog, DialogInstance
from services import formatting
from services.access import AccessService, Caller
from services.activity_receipts import ActivityReceipts, receipt_key
from services.conversations import ConversationReferenceService
from services.errors import DomainError
from services.i18n import N_, _
from services.locales import language_choices, resolve_locale
from services.logging_context import correlation_scope, current_correlation_id
from services.remote_waits import serve_as

log = logging.getLogger(__name__)

STATE_KEY = "csp.conversation_state"
OUTBOX_KEY = "csp.outbox"
ARRIVED_KEY = "csp.arrived"  # an _Arrival when this turn stored a member's 1:1 chat
MENU_WORDS = frozenset({"menu", "hi", "hello", "hey", "start", "home"})
HELP_WORDS = frozenset({"help", "?"})
CANCEL_WORDS = frozenset({"cancel", "stop", "quit", "exit"})
# `language` shows the language the bot answers in; `language nb`, `language de-DE`, `language auto` set it.
LANGUAGE_WORD = "language"
INVOKE_MESSAGE = "application/vnd.microsoft.activity.message"
ALREADY_RECEIVED = N_("Already received: it is being handled or done.")
# Invokes that change nothing: a repeat is answered again (a message-extension search; a card's
# automatic refresh, an adaptiveCard/action with trigger "automatic").
READING_INVOKES = frozenset({"composeExtension/query"})
COMPOSE_QUERY = "composeExtension/query"
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
_MARKUP = re.compile(r"<[^>]*>")

InvokeHandler = Callable[[TurnContext, Caller, dict[str, Any]], Awaitable[AdaptiveCardInvokeResponse]]


class _DelayedTyping:
    """One typing indicator, sent only if the turn is still running after `delay` seconds: a fast
    turn's reply arrives before anyone would notice, and needs no extra round trip to Teams. None
    while the event loop lags: the turn is slow because the process is behind, and one more request
    to Teams would only put it further behind."""

    def __init__(self, context: TurnContext, delay: float, loop_lag: LoopLag | None) -> None:
        self._context = context
        self._loop_lag = loop_lag
        self._sending = False
        self._task = asyncio.create_task(self._after(delay))

    async def _after(self, delay: float) -> None:
        serve_as(None)  # sent beside the turn's work, not instead of it: the turn is still working
        await asyncio.sleep(delay)
        if self._loop_lag is not None and self._loop_lag.lagging():
            log.debug("no typing indicator: the event loop is lagging")
            return
        self._sending = True
        try:
            await _Outbox.send_typing(self._context)
        except Exception:
            log.warning("the typing indicator could not be sent", exc_info=True)

    async def stop(self) -> None:
        """Before the replies go out: cancel a pending indicator, or let one in flight arrive first."""
        if not self._sending:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class _Outbox:
    """Holds a turn's replies until its state is saved (typing indicators go out around it)."""

    def __init__(self, live_cards: LiveCards | None = None) -> None:
        self.held: list[Activity] = []
        self.typing: _DelayedTyping | None = None
        self.live_cards = live_cards
        self.card_turn: CardTurn | None = None  # None: this turn's cards are not a task's (or it failed)
        self.answered = False  # some reply has gone out to the channel

    async def intercept(
        self, context: TurnContext, activities: list[Activity], _send: Callable[[], Awaitable[Any]]
    ) -> list[ResourceResponse]:
        self.held.extend(activities)
        if any(activity.type not in (ActivityTypes.trace, ActivityTypes.typing) for activity in activities):
            context.responded = True  # what the SDK would record had they been sent (prompts read it)
        return [ResourceResponse() for _unused in activities]

    def hold(self, context: TurnContext, activity: Activity) -> None:
        """Queue an activity this handler has just built, for the end of the turn.

        `context.send_activity` deep-copies every activity it is given (so callers may reuse theirs);
        for a freshly built card that copy is a tenth of a menu turn's CPU (docs/benchmarks.md), and an
        activity built for one reply needs no protection from its builder."""
        activity = TurnContext.apply_conversation_reference(activity, context.activity.get_conversation_reference())
        activity.input_hint = activity.input_hint or "acceptingInput"
        activity.id = None
        self.held.append(activity)
        context.responded = True

    @staticmethod
    async def send_typing(context: TurnContext) -> None:
        """Straight to the channel, around the hold, and without marking the turn as answered."""
        typing = TurnContext.apply_conversation_reference(
            Activity(type=ActivityTypes.typing), context.activity.get_conversation_reference()
        )
        await context.adapter.send_activities(context, [typing])

    async def flush(self, context: TurnContext) -> None:
        if self.typing is not None:
            await self.typing.stop()
        held, self.held = self.held, []
        turn, live = self.card_turn, self.live_cards
        stamped: list[tuple[int, str, dict[str, Any]]] = []
        if turn is not None and live is not None:
            held = await live.settle(context, turn, held)
            stamped = live.stamp_outgoing(turn, held)
        if held:
            self.answered = True
            responses = await context.adapter.send_activities(context, held)
            context.responded = True
            if stamped and turn is not None and live is not None:
                await live.remember(turn, stamped, responses)


def _conversation_type(activity: Activity) -> str:
    conversation = activity.conversation
    return (conversation.conversation_type if conversation is not None else None) or "personal"


def _receipt_of(activity: Activity) -> str | None:
    """The key that recognises a re-delivery of this activity; None when it has no id or only reads."""
    if not activity.id:
        return None
    if activity.type == ActivityTypes.invoke:
        value = activity.value if isinstance(activity.value, dict) else {}
        if activity.name in READING_INVOKES or (
            activity.name == "adaptiveCard/action" and value.get("trigger") == "automatic"
        ):
            return None
    conversation_id = activity.conversation.id if activity.conversation is not None else ""
    return receipt_key(activity.channel_id or "", conversation_id or "", activity.id)


def _reference_of(activity: Activity) -> dict[str, Any]:
    return activity.get_conversation_reference().model_dump(mode="json", by_alias=True, exclude_none=True)


class CspBot(ActivityHandler):
    def __init__(
        self,
        *,
        storage: SqlStorage,
        access: AccessService,
        conversations: ConversationReferenceService,
        receipts: ActivityReceipts,
        tasks: TaskCatalogue,
        messenger: ProactiveMessenger,
        invoke_handlers: dict[str, InvokeHandler] | None = None,
        typing_delay: float = 0.5,
        live_cards: LiveCards | None = None,
        on_arrival: Callable[[str, Caller], Awaitable[None]] | None = None,
        loop_lag: LoopLag | None = None,
    ) -> None:
        """`on_arrival(chat_id, caller)`: called after a turn that stored a member's 1:1 chat."""
        self._on_arrival = on_arrival
        self._typing_delay = typing_delay
        self._live_cards = live_cards
        self._loop_lag = loop_lag
        self._storage = storage
        self._messenger = messenger
        self._access = access
        self._conversations = conversations
        self._receipts = receipts
        self._tasks = tasks
        self._invoke_handlers = {**tasks.card_actions(), **(invoke_handlers or {})}
        self._named_invokes = tasks.invokes()
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    # ---- the turn ------------------------------------------------------------------------
    def conversation_lock(self, conversation_id: str) -> asyncio.Lock:
        """The lock a turn of this conversation holds until its replies are sent (for follow-ups)."""
        return self._lock_for(conversation_id)

    def _lock_for(self, conversation_id: str) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        return lock

    async def on_turn(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        activity = turn_context.activity
        conversation_id = activity.conversation.id if activity.conversation else ""
        # Numbers, money and dates of this turn read in the caller's Teams locale (nb-NO → nb → English).
        with correlation_scope(), formatting.reading(resolve_locale(activity.locale)):
            receipt = _receipt_of(activity)
            if receipt is not None and not await self._receipts.take(receipt):
                log.info("dropped a re-delivered %s activity (id %s)", activity.type, activity.id)
                await self._answer_again_delivered(turn_context)
                return
            outbox = _Outbox(self._live_cards)
            turn_context.on_send_activities(outbox.intercept)
            turn_context.turn_state[OUTBOX_KEY] = outbox
            turn_context.turn_state[MESSENGER_KEY] = self._messenger
            refusal = sanitise_activity(activity)  # before anything reads the text or the card's value
            if refusal is not None:
                log.info("input refused before the turn: %s", refusal)
                await self._refuse(turn_context, outbox, refusal)
                return
            if activity.type == ActivityTypes.message:
                # Teams shows "typing…" in chats only; a channel gets none (the Playground's page
                # even fails on one sent to a channel's thread).
                if _conversation_type(activity) != "channel":
                    outbox.typing = _DelayedTyping(turn_context, self._typing_delay, self._loop_lag)
                if self._live_cards is not None:
                    outbox.card_turn = self._live_cards.begin(turn_context)
            try:
                await self._serialised_turn(turn_context, outbox, conversation_id)
                await self._after_arrival(turn_context)
            except BaseException:
                # Cut off before it answered (e.g. the process is stopping): Teams' retry may run it.
                if receipt is not None and not outbox.answered:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(self._receipts.release(receipt))
                raise
            finally:
                if outbox.typing is not None:
                    await outbox.typing.stop()

    async def _after_arrival(self, turn_context: TurnContext) -> None:
        """A member's 1:1 chat was (re)stored this turn: once its replies are out, hand them what
        waited for them (e.g. approval requests no one could post them before)."""
        arrived = turn_context.turn_state.get(ARRIVED_KEY)
        if not isinstance(arrived, _Arrival) or self._on_arrival is None:
            return
        try:
            await self._on_arrival(arrived.chat_id, arrived.caller)
        except Exception:
            log.exception("could not hand a member what waited for them")

    @staticmethod
    async def _answer_again_delivered(turn_context: TurnContext) -> None:
        """A re-delivered activity gets no reply; an invoke must be answered, and gets a harmless answer."""
        activity = turn_context.activity
        if activity.type != ActivityTypes.invoke:
            return
        if activity.name == "adaptiveCard/action":
            await turn_context.send_activity(_invoke_message_activity(_(ALREADY_RECEIVED)))
        else:
            await turn_context.send_activity(Activity(type=ActivityTypes.invoke_response, value={"status": 200}))

    async def begin_task(self, conversation_id: str, command: str, caller: Caller) -> bool:
        """Start a task in a conversation outside the user's turn — e.g. "add subscription" right
        after the tenant it needs was created by a job. Does nothing if the caller's role does not
        allow the task or a task is already waiting there. True when the task was started."""
        task = self._tasks.find(command)
        if task is None or not caller.can(task.permission):
            return False
        started: list[bool] = []

        async def _begin(turn_context: TurnContext) -> None:
            with correlation_scope():
                outbox = _Outbox(self._live_cards)
                outbox.card_turn = CardTurn(conversation_id, caller.display_name or "", task_at_end=task.dialog.id)
                turn_context.on_send_activities(outbox.intercept)
                turn_context.turn_state[OUTBOX_KEY] = outbox
                turn_context.turn_state[MESSENGER_KEY] = self._messenger
                turn_context.turn_state[CALLER_KEY] = caller
                async with self._lock_for(conversation_id):
                    state = ConversationState(self._storage)
                    await state.load(turn_context, force=True)
                    cached = state.get_cached_state()
                    if getattr(cached, "e_tag", None) is None:
                        cached.e_tag = CREATE_ONLY  # type: ignore[attr-defined]
                    accessor = state.create_property("DialogState")
                    dialog_context = await self._tasks.dialog_set(accessor).create_context(turn_context)
                    if dialog_context.active_dialog is not None:
                        return
                    await dialog_context.begin_dialog(task.dialog.id)
                    await state.save(turn_context)  # a conflict: the user moved on; nothing is sent
                    await outbox.flush(turn_context)
                    started.append(True)

        try:
            await self._messenger.run(conversation_id, _begin)
        except StateConflictError:
            log.info("the conversation moved on; %r was not started for it", command)
            return False
        return bool(started)

    async def _serialised_turn(self, turn_context: TurnContext, outbox: _Outbox, conversation_id: str) -> None:
        """One turn at a time per conversation; a state conflict runs the turn once more."""
        async with self._lock_for(conversation_id):
            for attempt in (1, 2):
                try:
                    await self._run_turn(turn_context)
                    await outbox.flush(turn_context)
                    return
                except StateConflictError:
                    outbox.held.clear()
                    if outbox.card_turn is not None:
                        outbox.card_turn.closing.clear()
                    if attempt == 2:
                        await self._fail(turn_context, outbox, reset=False)
                        return
                    log.info("conversation state changed under this turn; running it again")
                except DomainError as error:
                    # Nothing of this turn's dialog progress is saved: the user can simply retry.
                    outbox.held.clear()
                    outbox.card_turn = None
                    await turn_context.send_activity(MessageFactory.text(error.message))
                    await outbox.flush(turn_context)
                    return
                except Exception:  # noqa: BLE001 - the turn's error boundary: logged with a reference, the user gets a card
                    await self._fail(turn_context, outbox, reset=True)
                    return

    async def _run_turn(self, turn_context: TurnContext) -> None:
        state = ConversationState(self._storage)  # per turn: a shared instance mixes conversations
        await state.load(turn_context, force=True)
        cached = state.get_cached_state()
        is_new_conversation = getattr(cached, "e_tag", None) is None
        if is_new_conversation:
            cached.e_tag = CREATE_ONLY  # type: ignore[attr-defined]
        turn_context.turn_state[STATE_KEY] = state
        turn_context.turn_state["csp.new_conversation"] = is_new_conversation
        await super().on_turn(turn_context)
        await state.save(turn_context)

    @staticmethod
    async def _refuse(turn_context: TurnContext, outbox: _Outbox, message: str) -> None:
        """Say why the input was refused; nothing else runs and no state is touched, so a task
        waiting for a card or an answer still waits."""
        activity = turn_context.activity
        if activity.type == ActivityTypes.invoke:
            if activity.name == COMPOSE_QUERY:
                body = {"composeExtension": {"type": "message", "text": message}}
                reply = Activity(type=ActivityTypes.invoke_response, value={"status": 200, "body": body})
            else:
                reply = _invoke_message_activity(message)
        elif activity.type == ActivityTypes.message:
            reply = MessageFactory.text(message)
        else:
            return
        await turn_context.send_activity(reply)
        await outbox.flush(turn_context)

    async def _fail(self, turn_context: TurnContext, outbox: _Outbox, *, reset: bool) -> None:
        reference = current_correlation_id()
        log.exception("turn failed (reference %s)", reference)
        outbox.held.clear()
        outbox.card_turn = None
        state = turn_context.turn_state.get(STATE_KEY)
        if reset and isinstance(state, ConversationState):
            # Conditional on the e-tag this turn read: never wipes what another replica saved since.
            try:
                state.clear(turn_context)
                await state.save(turn_context, force=True)
            except StateConflictError:
                log.info("the conversation moved on elsewhere; its state was left as it is")
            except Exception:
                log.exception("could not reset the conversation's dialog state")
        try:
            if turn_context.activity.type == ActivityTypes.invoke:
                await turn_context.send_activity(
                    _invoke_message_activity(_("Sorry, that did not work. Reference: ") + reference)
                )
            else:
                await turn_context.send_activity(card_activity(build_error_card(reference)))
            await outbox.flush(turn_context)
        except Exception:
            log.exception("could not tell the user about the failure")

    # ---- who is calling -------------------------------------------------------------------
    async def _caller(self, turn_context: TurnContext) -> Caller | None:
        identity = channel_identity(turn_context.activity)
        caller = await self._access.resolve(identity)
        if caller is None and identity.aad_object_id and identity.tenant_id:
            email = await roster_email(turn_context)
            if email:
                caller = await self._access.bind_by_email(identity, email)
        if caller is not None:
            tag = turn_context.activity.locale
            if tag:
                try:
                    await self._access.remember_teams_locale(caller, tag)
                except Exception:  # a turn is not lost for want of remembering a locale
                    log.exception("could not remember the Teams locale of member %s", caller.member_id)
            if caller.language:  # their own choice wins over Teams' locale
                formatting.adopt_locale(resolve_locale(caller.language))
            caller = replace(caller, locale=formatting.reader().locale)
            formatting.adopt_timezone(caller.timezone)
            turn_context.turn_state[CALLER_KEY] = caller
        return caller

    async def _remember_conversation(self, turn_context: TurnContext, caller: Caller | None) -> None:
        """Store where the bot can write to this member later. Proactive messages only ever go to
        members, so a caller who is no member leaves nothing behind (strangers cannot grow the table)."""
        activity = turn_context.activity
        if activity.conversation is None or caller is None:
            return
        await self._conversations.save(
            activity.conversation.id,
            _reference_of(activity),
            conversation_type=_conversation_type(activity),
            organisation_id=caller.organisation_id,
            member_id=caller.member_id,
        )
        if _conversation_type(activity) == "personal":
            turn_context.turn_state[ARRIVED_KEY] = _Arrival(activity.conversation.id, caller)

    @staticmethod
    def _reply(turn_context: TurnContext, reply: Activity | str) -> None:
        outbox = _turn_value(turn_context, OUTBOX_KEY, _Outbox)
        outbox.hold(turn_context, MessageFactory.text(reply) if isinstance(reply, str) else reply)

    @staticmethod
    def _summary(caller: Caller) -> CallerSummary:
        return CallerSummary(caller.display_name or caller.email, caller.organisation_name, sorted(caller.roles))

    # ---- messages --------------------------------------------------------------------------
    async def on_message_activity(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        activity = turn_context.activity
        if activity.conversation is not None and activity.conversation.is_group:
            turn_context.activity.remove_recipient_mention()
        caller = await self._caller(turn_context)
        if turn_context.turn_state.get("csp.new_conversation"):
            await self._remember_conversation(turn_context, caller)
        if caller is None:
            sender = activity.from_property.name if activity.from_property else ""
            self._reply(turn_context, card_activity(build_not_registered_card(sender or "")))
            return
        if _is_shared_card(activity):
            return  # a card put into the chat (a bill from the message extension): shown to people, not said to us
        state = _turn_value(turn_context, STATE_KEY, ConversationState)
        dialog_context = await self._tasks.dialog_set(state.create_property("DialogState")).create_context(turn_context)
        outbox = _turn_value(turn_context, OUTBOX_KEY, _Outbox)
        card_turn = outbox.card_turn
        active = dialog_context.active_dialog.id if dialog_context.active_dialog is not None else None
        if card_turn is not None and self._live_cards is not None:
            await self._live_cards.load_source(card_turn)
            card_turn.task_at_start = active
            refusal = self._live_cards.refusal(card_turn, active)
            if refusal is not None:
                card_turn.task_at_end = active
                if refusal:
                    self._reply(turn_context, refusal)
                return
        try:
            await self._dispatch(turn_context, dialog_context, caller)
        finally:
            if card_turn is not None:
                card_turn.task_at_end = (
                    dialog_context.active_dialog.id if dialog_context.active_dialog is not None else None
                )

    async def _dispatch(self, turn_context: TurnContext, dialog_context: Any, caller: Caller) -> None:
        """Continue the waiting task, or leave it for a typed command, or start one."""
        activity = turn_context.activity
        if dialog_context.active_dialog is not None:
            if not self._switches_task(activity, dialog_context.active_dialog):
                await dialog_context.continue_dialog()
                return
            # A typed command (e.g. from Teams' command list) or "menu" leaves the task waiting here.
            active_id = dialog_context.active_dialog.id
            title = self._tasks.title_of(active_id) or _("the previous task")
            await dialog_context.cancel_all_dialogs()
            following = self._tasks.find(_command_button(activity) or normalised_text(activity))
            card_turn = _turn_value(turn_context, OUTBOX_KEY, _Outbox).card_turn
            if following is not None and following.dialog.id == active_id:
                # The same task typed again (e.g. one the bot started by itself): start it afresh.
                if card_turn is not None:
                    card_turn.closing[active_id] = _("Started again below.")
            else:
                if card_turn is not None:
                    what = f"**{_(following.title)}**" if following is not None else _("the menu")
                    card_turn.closing[active_id] = _("Stopped: you went on to {what}.", what=what)
                self._reply(turn_context, _("Stopped **{title}**; nothing more was changed there.", title=title))
        await self._start(turn_context, dialog_context, caller)

    def _switches_task(self, activity: Activity, active: DialogInstance) -> bool:
        """Typed text that names a task, or the menu, while the task waits for a card. A task asking
        for typed text gets the text as its answer; card submits always go to the task."""
        if _command_button(activity) is not None:
            return True  # a button that does what typing a command does ("My services", "Menu")
        if activity.value is not None or _waiting_step(active) != CARD_PROMPT:
            return False
        words = normalised_text(activity)
        return bool(words) and (words in MENU_WORDS or self._tasks.find(words) is not None)

    async def _language(self, turn_context: TurnContext, caller: Caller, wanted: str) -> None:
        """Show the language the caller reads in, or set it (`nb`, `de-DE`, `auto` to follow Teams).
        A language the bot does not speak is refused with the list; nothing changes."""
        chosen = caller.language
        if wanted:
            try:
                chosen = await self._access.set_language(caller, wanted)
            except DomainError as error:
                self._reply(turn_context, error.message)
                return
            formatting.adopt_locale(resolve_locale(chosen or turn_context.activity.locale))
        locale = formatting.reader().locale
        name = Locale.parse(locale).get_display_name(locale) or locale
        languages = ", ".join(f"{tag} ({shown})" for tag, shown in language_choices())
        if chosen:
            said = _(
                "I answer you in **{language}**, as you chose. Type **language auto** to follow your Teams "
                "language again.",
                language=name,
            )
        else:
            said = _(
                "I answer you in **{language}**, the language of your Teams. Type **language** and a "
                "language to choose another: {languages}.",
                language=name,
                languages=languages,
            )
        if wanted:
            said = _("Saved. {said}", said=said)
        self._reply(turn_context, said)

    async def _start(self, turn_context: TurnContext, dialog_context: Any, caller: Caller) -> None:
        activity = turn_context.activity
        value = activity.value if isinstance(activity.value, dict) else None
        command = _command_button(activity)
        if command is not None:
            words = command
        elif value is not None:
            self._reply(
                turn_context,
                _("That card belongs to a task that has finished or was cancelled. Type **menu** to start again."),
            )
            return
        else:
            words = normalised_text(activity)
        entries = self._tasks.menu_for(caller)
        if words in HELP_WORDS:
            examples = self._tasks.examples_for(caller)
            self._reply(turn_context, card_activity(build_help_card(entries, examples=examples)))
        elif words in MENU_WORDS or not words:
            self._reply(turn_context, card_activity(build_menu_card(self._summary(caller), entries)))
        elif words == LANGUAGE_WORD or words.startswith(LANGUAGE_WORD + " "):
            await self._language(turn_context, caller, words[len(LANGUAGE_WORD) :].strip())
        elif words in CANCEL_WORDS:
            self._reply(turn_context, _("There is nothing to cancel. Type **menu** to see what I can do."))
        elif (task := self._tasks.find(words)) is not None:
            if not caller.can(task.permission):
                self._reply(turn_context, _("Your role does not allow **{title}**.", title=_(task.title)))
                return
            await dialog_context.begin_dialog(task.dialog.id)
        else:
            self._reply(turn_context, self._suggestion(words))

    def _suggestion(self, words: str) -> str:
        known = ["menu", "help", "cancel", *self._tasks.commands()]
        close = difflib.get_close_matches(words, known, n=1, cutoff=0.6)
        if close:
            return _(
                "I did not catch that. Did you mean **{value}**? Type **menu** to see everything I can do.",
                value=close[0],
            )
        return _("I did not catch that. Type **menu** to see what I can do, or **help**.")

    # ---- installation and conversation updates -----------------------------------------------
    async def on_members_added_activity(  # type: ignore[override]
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        recipient = turn_context.activity.recipient
        if recipient is None or not any(member.id == recipient.id for member in members_added):
            return
        caller = await self._caller(turn_context)
        await self._remember_conversation(turn_context, caller)
        if self._live_cards is not None and turn_context.activity.conversation is not None:
            await self._live_cards.forget_conversation(turn_context.activity.conversation.id)
        if caller is None:
            name = turn_context.activity.from_property.name if turn_context.activity.from_property else ""
            self._reply(turn_context, card_activity(build_not_registered_card(name or "")))
            return
        welcome = build_welcome_card(self._summary(caller), self._tasks.menu_for(caller))
        self._reply(turn_context, card_activity(welcome))

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:  # type: ignore[override]
        await self._remember_conversation(turn_context, await self._caller(turn_context))

    # ---- invokes ----------------------------------------------------------------------------
    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:  # type: ignore[override]
        activity = turn_context.activity
        if activity.name == "adaptiveCard/action":
            response = await self._card_action(turn_context)
            return InvokeResponse(status=200, body=response.model_dump(by_alias=True, exclude_none=True))
        named = self._named_invokes.get(activity.name or "")
        if named is not None:  # e.g. composeExtension/query, fileConsent/invoke (by invoke name)
            caller = await self._caller(turn_context)
            try:
                return await named(turn_context, caller)
            except DomainError as error:
                return InvokeResponse(status=200, body={"composeExtension": {"type": "message", "text": error.message}})
        return await super().on_invoke_activity(turn_context)

    async def _card_action(self, turn_context: TurnContext) -> AdaptiveCardInvokeResponse:
        value = turn_context.activity.value
        action = _mapping(value.get("action") if isinstance(value, dict) else None)
        verb = action.get("verb")
        verb = verb if isinstance(verb, str) else ""
        data = _mapping(action.get("data"))
        caller = await self._caller(turn_context)
        if caller is None:
            return _invoke_message(_("You are not registered with your reseller, so this card cannot act for you."))
        handler = self._invoke_handlers.get(verb)
        if handler is None:
            return _invoke_message(_("This card is out of date. Type **menu** to start again."))
        try:
            return await handler(turn_context, caller, data)
        except DomainError as error:
            return _invoke_message(error.message)


_Value = TypeVar("_Value")


@dataclass(frozen=True)
class _Arrival:
    """This turn stored a member's 1:1 chat: once the replies are out, `on_arrival` gets these."""

    chat_id: str
    caller: Caller


def _turn_value(turn_context: TurnContext, key: str, kind: type[_Value]) -> _Value:
    """What this bot put in the turn state under `key` before the turn ran, as the type it put there."""
    value = turn_context.turn_state[key]
    if not isinstance(value, kind):
        raise TypeError(f"turn state {key!r} holds {type(value).__name__}, not {kind.__name__}")
    return value


def _mapping(value: object) -> dict[str, Any]:
    """A card payload's object, or an empty one for anything else."""
    return value if isinstance(value, dict) else {}


def _is_shared_card(activity: Activity) -> bool:
    """A message that only carries an Adaptive Card someone inserted from a message extension (Teams
    sends it with the card as an attachment and, as text, only the markup that places it)."""
    if activity.value is not None:
        return False
    cards = [item for item in activity.attachments or [] if item.content_type == ADAPTIVE_CARD]
    return bool(cards) and not _MARKUP.sub("", activity.text or "").strip()


def _command_button(activity: Activity) -> str | None:
    """The command of a button that does what typing it does (verb "command"), normalised."""
    value = activity.value
    if isinstance(value, dict) and value.get("verb") == "command":
        return " ".join(str(value.get("command", "")).lower().split())
    return None


def _waiting_step(instance: DialogInstance) -> str | None:
    """The innermost dialog waiting for the user (inside component dialogs): e.g. the card prompt."""
    while isinstance(instance.state, dict):
        inner = instance.state.get(ComponentDialog.persisted_dialog_state)
        stack = getattr(inner, "dialog_stack", None)
        if not stack:
            break
        instance = stack[0]
    return instance.id


def _invoke_message(message: str) -> AdaptiveCardInvokeResponse:
    return AdaptiveCardInvokeResponse(status_code=200, type=INVOKE_MESSAGE, value=message)


def _invoke_message_activity(message: str) -> Activity:
    body = _invoke_message(message).model_dump(by_alias=True, exclude_none=True)
    return Activity(type=ActivityTypes.invoke_response, value={"status": 200, "body": body})
