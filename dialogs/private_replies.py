"""Answers that hold user lists or bills go to the requester's 1:1 chat, never into a channel.

Dialogs may import only cards and services (DESIGN, "Layers"), so the bot layer hands its proactive
messenger to each turn under `MESSENGER_KEY`; this module only needs what `Messenger` describes.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import TurnContext

from services.access import Caller
from services.errors import NotFound
from services.i18n import N_, _

MESSENGER_KEY = "csp.messenger"
SENT_PRIVATELY = N_("I have sent that to you in our 1:1 chat.")
OPEN_A_CHAT = N_(
    "That answer holds private details, so I only send it in a 1:1 chat, and we have not chatted "
    "yet. Open a chat with me (Apps → CSP Self-Service) and ask there."
)


@runtime_checkable
class Messenger(Protocol):
    """What a dialog may ask of the bot's proactive messenger (`bot.proactive.ProactiveMessenger`)."""

    async def send(self, conversation_id: str, activity: Activity) -> str | None: ...

    async def update(self, conversation_id: str, activity_id: str, activity: Activity) -> None: ...

    async def send_to_member(self, member_id: int, activity: Activity) -> str | None: ...


def messenger_of(context: TurnContext) -> Messenger | None:
    """This turn's messenger, put there by the bot (None outside a bot turn)."""
    messenger = context.turn_state.get(MESSENGER_KEY)
    return messenger if isinstance(messenger, Messenger) else None


async def send_privately(context: TurnContext, caller: Caller, activity: Activity) -> None:
    """In a 1:1 chat reply as usual; elsewhere post to the caller's 1:1 chat and say so here."""
    conversation = context.activity.conversation
    if conversation is None or (conversation.conversation_type or "personal") == "personal":
        await context.send_activity(activity)
        return
    messenger = messenger_of(context)
    if messenger is None:
        raise RuntimeError("the bot did not provide a messenger for this turn")
    try:
        await messenger.send_to_member(caller.member_id, activity)
    except NotFound:
        await context.send_activity(_(OPEN_A_CHAT))
        return
    await context.send_activity(_(SENT_PRIVATELY))
