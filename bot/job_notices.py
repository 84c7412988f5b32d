"""Tells the requester how a durable job ended, in the conversation the request came from."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import MessageFactory

from bot.proactive import ProactiveMessenger
from services.i18n import _
from services.jobs import SUCCEEDED, JobView

JobRenderer = Callable[[JobView], Activity]
log = logging.getLogger(__name__)


def default_render(job: JobView) -> Activity:
    if job.status == SUCCEEDED:
        message = (job.result or {}).get("message") or _("Done.")
        return MessageFactory.text(str(message))
    return MessageFactory.text(_("That did not work: {error}", error=job.error_message))


ConversationLock = Callable[[str], AbstractAsyncContextManager[object]]
# After a job's outcome is told: start the next task in the same conversation (conversation id, job).
FollowUp = Callable[[str, JobView], Awaitable[None]]


class JobNotifier:
    """A job kind may register its own renderer (e.g. a card showing the new tenant).

    `conversation_lock` is the bot's per-conversation turn lock: a job that finishes while the turn
    that submitted it is still running (its "working on it…" held until the state is saved) waits
    for that turn, so the outcome never arrives before the acknowledgement."""

    def __init__(
        self,
        messenger: ProactiveMessenger,
        renderers: dict[str, JobRenderer] | None = None,
        *,
        conversation_lock: ConversationLock | None = None,
        follow_ups: dict[str, FollowUp] | None = None,
    ) -> None:
        self._messenger = messenger
        self._renderers = dict(renderers or {})
        self._conversation_lock = conversation_lock
        self._follow_ups = dict(follow_ups or {})

    async def __call__(self, job: JobView) -> None:
        conversation_id = job.notify_conversation_id
        if conversation_id is None:
            return
        render = self._renderers.get(job.kind, default_render)
        if self._conversation_lock is None:
            await self._messenger.send(conversation_id, render(job))
        else:
            async with self._conversation_lock(conversation_id):
                await self._messenger.send(conversation_id, render(job))
        follow_up = self._follow_ups.get(job.kind)
        if follow_up is not None and job.status == SUCCEEDED:
            try:
                await follow_up(conversation_id, job)
            except Exception:  # the outcome was told; the next task can still be started by hand
                log.exception("job %s: the follow-up task could not be started", job.id)
