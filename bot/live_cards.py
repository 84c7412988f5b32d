"""Cards that tell the truth after they are used.

Every card a task posts is stamped with a card id and remembered (`services.sent_cards`). When a
person clicks one:
- the next screen of the same task takes the card's place in the same message (a form shown again
  with an error, the next step of a walk), instead of piling up live-looking copies;
- an action carried out (or a task ended from the card) turns the card into a read-only record of
  what happened, who did it and when;
- a click on a card that is no longer live is answered for what it is — already done, or from an
  earlier task — and reaches no task.
When a task is cancelled or replaced by another, its live cards become records too.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from microsoft_agents.activity import Activity, ResourceResponse
from microsoft_agents.hosting.core import CardFactory, MessageFactory, TurnContext

from cards.records import CARD_ID_KEY, build_record, clicked_action, stamp
from dialogs.base import CARD_DONE_KEY, TASK_CLOSED_KEY
from services import formatting
from services.db import utcnow
from services.i18n import _
from services.sent_cards import CLOSED, DONE, LIVE, REPLACED, SentCard, SentCardStore

log = logging.getLogger(__name__)

ADAPTIVE = "application/vnd.microsoft.card.adaptive"
COMMAND_VERB = "command"  # buttons that do what typing a command does; they work on any card


def _card_of(activity: Activity) -> dict[str, Any] | None:
    contents = [a.content for a in activity.attachments or [] if a.content_type == ADAPTIVE]
    cards = [content for content in contents if isinstance(content, dict)]
    return cards[0] if len(cards) == 1 else None


@dataclass
class CardTurn:
    """What one turn knows about cards: the card clicked (if any) and how the turn's task moved."""

    conversation_id: str
    actor: str
    submitted: dict[str, Any] | None = None
    card_id: str = ""
    source: SentCard | None = None
    task_at_start: str | None = None
    task_at_end: str | None = None
    # Tasks whose live cards must become records, with the line that says why.
    closing: dict[str, str] = field(default_factory=dict)

    @property
    def verb(self) -> str:
        return str((self.submitted or {}).get("verb", ""))


class LiveCards:
    def __init__(self, store: SentCardStore, describe: Callable[[str], tuple[str, str] | None]) -> None:
        """`describe`: a task's (title, command) by its dialog id."""
        self._store = store
        self._describe = describe

    # ---- the start of a turn -------------------------------------------------------------------
    def begin(self, context: TurnContext) -> CardTurn:
        """This turn's card bookkeeping; a submit's card id is taken out of the value the task reads."""
        activity = context.activity
        sender = activity.from_property
        conversation_id = activity.conversation.id if activity.conversation else ""
        turn = CardTurn(conversation_id, (sender.name if sender else "") or "")
        value = activity.value
        if isinstance(value, dict):
            turn.submitted = value
            card_id = value.pop(CARD_ID_KEY, None)
            turn.card_id = card_id[:40] if isinstance(card_id, str) else ""
        return turn

    async def load_source(self, turn: CardTurn) -> None:
        """The clicked card as it is now (read inside the conversation's turn lock)."""
        if turn.card_id and turn.conversation_id:
            turn.source = await self._store.find(turn.conversation_id, turn.card_id)

    def refusal(self, turn: CardTurn, active_task: str | None) -> str | None:
        """What to say instead of acting on a click of a card that is no longer live ("" = nothing)."""
        source = turn.source
        if source is None or turn.verb == COMMAND_VERB:
            return None
        if source.status == DONE:
            if source.outcome:
                return _(
                    "That was already done from this card ({outcome}); nothing more was done.", outcome=source.outcome
                )
            return _("That was already done from this card; nothing more was done.")
        if source.status == REPLACED:
            return ""  # a second click on a screen that has just been replaced: the new one is showing
        if source.status == CLOSED or source.task != active_task:
            title, command = self._describe(source.task) or (_("task"), "menu")
            return _(
                "That card is from an earlier **{title}** that has ended; nothing was done. Type "
                "**{command}** to start again.",
                title=title,
                command=command,
            )
        return None

    async def forget_conversation(self, conversation_id: str) -> None:
        """The bot was (re)installed in the conversation — in the Agents Playground, a page reload that
        shows an empty chat: its earlier cards are no longer on screen to update, so they are closed
        as they are (updating a message the client no longer has breaks the Playground's page)."""
        if conversation_id:
            await self._store.close_all(conversation_id, _("The bot was installed again in this chat."))

    # ---- the end of a turn: before its replies go out ------------------------------------------
    async def settle(self, context: TurnContext, turn: CardTurn, held: list[Activity]) -> list[Activity]:
        """Update the clicked card (record or next screen) and the cards of ended tasks; returns the
        replies still to send, task cards stamped with their ids."""
        now = utcnow()
        remaining = list(held)
        source = turn.source
        ended = turn.task_at_start is not None and turn.task_at_start != turn.task_at_end
        if ended and turn.task_at_start not in turn.closing:
            why = context.turn_state.get(TASK_CLOSED_KEY) or _("This task has ended.")
            turn.closing[turn.task_at_start] = str(why)  # type: ignore[index]
        if source is not None and source.status == LIVE and turn.verb != COMMAND_VERB:
            done = context.turn_state.get(CARD_DONE_KEY)
            clicked = clicked_action(source.card, turn.submitted or {})
            title = str((clicked or {}).get("title") or _("Done"))
            if done is not None or (ended and source.task == turn.task_at_start):
                cancelled = done is None and title.lower() in {"cancel", _("Cancel").lower()}
                what = _("Cancelled") if cancelled else (str(done) if done else title)
                outcome = _(
                    "{what} — {who}, {when}",
                    what=what,
                    who=turn.actor or _("someone"),
                    when=formatting.datetime_utc(now),
                )
                status = CLOSED if cancelled else DONE
                if await self._store.settle(turn.conversation_id, source.card_id, status, outcome):
                    record = build_record(source.card, turn.submitted or {}, f"{'✕' if cancelled else '✓'} {outcome}")
                    await self._update(context, source.activity_id, record)
            elif turn.task_at_end == source.task:
                replacement = self._single_card_reply(remaining)
                if replacement is not None:
                    remaining.remove(replacement)
                    card_id = secrets.token_hex(8)
                    card = stamp(_card_of(replacement) or {}, card_id)
                    if await self._store.settle(turn.conversation_id, source.card_id, REPLACED):
                        if await self._update(context, source.activity_id, card):
                            await self._store.register(
                                turn.conversation_id, card_id, source.activity_id, source.task, card
                            )
                        else:  # the channel would not update it: post the screen as a new message
                            remaining.insert(0, replacement)
                    else:
                        remaining.insert(0, replacement)
        for task, why in turn.closing.items():
            for live in await self._store.live_of_task(turn.conversation_id, task):
                if source is not None and live.card_id == source.card_id:
                    continue
                if await self._store.settle(turn.conversation_id, live.card_id, CLOSED, why):
                    await self._update(context, live.activity_id, build_record(live.card, {}, f"✕ {why}"))
        return remaining

    @staticmethod
    def _single_card_reply(held: list[Activity]) -> Activity | None:
        """The reply that is the task's next screen: the turn's one card, sent with no other card."""
        with_cards = [activity for activity in held if _card_of(activity) is not None]
        return with_cards[0] if len(with_cards) == 1 else None

    def stamp_outgoing(self, turn: CardTurn, held: list[Activity]) -> list[tuple[int, str, dict[str, Any]]]:
        """Give each card of a task still running an id; returns (position, card id, card)."""
        if turn.task_at_end is None:
            return []
        stamped: list[tuple[int, str, dict[str, Any]]] = []
        for position, activity in enumerate(held):
            content = _card_of(activity)
            if content is None:
                continue
            card_id = secrets.token_hex(8)
            card = stamp(content, card_id)
            activity.attachments = [CardFactory.adaptive_card(card)]
            stamped.append((position, card_id, card))
        return stamped

    async def remember(
        self,
        turn: CardTurn,
        stamped: list[tuple[int, str, dict[str, Any]]],
        responses: list[ResourceResponse] | None,
    ) -> None:
        """After sending: remember each stamped card under the message id the channel gave it."""
        if turn.task_at_end is None:
            return
        for position, card_id, card in stamped:
            response = responses[position] if responses and position < len(responses) else None
            if response is not None and response.id:
                await self._store.register(turn.conversation_id, card_id, response.id, turn.task_at_end, card)

    async def _update(self, context: TurnContext, activity_id: str, card: dict[str, Any]) -> bool:
        update = MessageFactory.attachment(CardFactory.adaptive_card(card))
        update.id = activity_id
        try:
            await context.update_activity(update)
        except Exception:  # the channel refused (e.g. the message was deleted): the chat goes on
            log.warning("could not update card message %s", activity_id, exc_info=True)
            return False
        return True
