"""Proactive messages: write to a member or a channel later, by stored conversation reference
(job outcomes, approval cards), and update a card sent earlier.

A stored reference whose service URL CONNECTOR_HOSTS does not allow (stored before the list changed,
or written into the database by hand) is refused before the SDK makes a turn for it: a warning is
logged, `HostNotAllowed` raised, and no token is asked for or sent."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from microsoft_agents.activity import Activity, ConversationReference
from microsoft_agents.hosting.core import ClaimsIdentity, TurnContext
from microsoft_agents.hosting.core.channel_service_adapter import ChannelServiceAdapter

from services.conversations import ConversationReferenceService
from services.errors import NotFound
from services.i18n import _
from services.outbound_hosts import HostAllowList

log = logging.getLogger(__name__)


class ProactiveMessenger:
    def __init__(
        self,
        adapter: ChannelServiceAdapter,
        conversations: ConversationReferenceService,
        *,
        app_id: str,
        connector_hosts: HostAllowList,
    ) -> None:
        self._adapter = adapter
        self._conversations = conversations
        self._app_id = app_id
        self._connector_hosts = connector_hosts

    async def _continue(self, conversation_id: str, callback: Callable[[TurnContext], Awaitable[None]]) -> None:
        stored = await self._conversations.get(conversation_id)
        if stored is None:
            raise NotFound(
                _(
                    "No stored conversation {conversation_id!r}; the bot was never installed there.",
                    conversation_id=conversation_id,
                )
            )
        reference = ConversationReference.model_validate(stored.reference)
        self._connector_hosts.check(reference.service_url)
        continuation = reference.get_continuation_activity()
        if self._app_id:
            await self._adapter.continue_conversation(self._app_id, continuation, callback)
        else:
            # Unauthenticated local mode (the Playground): no outbound token to ask for.
            await self._adapter.continue_conversation_with_claims(ClaimsIdentity(), continuation, callback)

    async def run(self, conversation_id: str, callback: Callable[[TurnContext], Awaitable[None]]) -> None:
        """Run `callback` in a turn of the stored conversation (e.g. to start a task proactively)."""
        await self._continue(conversation_id, callback)

    async def send(self, conversation_id: str, activity: Activity) -> str | None:
        """Post `activity` into the conversation; returns the new message's id (to update it later)."""
        sent: list[str | None] = []

        async def _send(context: TurnContext) -> None:
            response = await context.send_activity(activity)
            sent.append(response.id if response is not None else None)

        await self._continue(conversation_id, _send)
        return sent[0] if sent else None

    async def update(self, conversation_id: str, activity_id: str, activity: Activity) -> None:
        """Replace a message sent earlier (e.g. an approval card once decided)."""

        async def _update(context: TurnContext) -> None:
            replacement = activity.model_copy()
            replacement.id = activity_id
            await context.update_activity(replacement)

        await self._continue(conversation_id, _update)

    async def send_to_member(self, member_id: int, activity: Activity) -> str | None:
        """Post into the member's 1:1 chat with the bot."""
        stored = await self._conversations.personal_chat_of(member_id)
        if stored is None:
            raise NotFound(_("That person has not chatted with the bot yet, so I cannot write to them privately."))
        return await self.send(stored.conversation_id, activity)
