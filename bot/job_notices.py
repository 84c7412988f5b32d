"""Tells the requester how a durable job ended, in the conversation the request came from."""

from __future__ import annotations

from collections.abc import Callable

from microsoft_agents.activity import Activity
from microsoft_agents.hosting.core import MessageFactory

from bot.proactive import ProactiveMessenger
from services.jobs import SUCCEEDED, JobView

JobRenderer = Callable[[JobView], Activity]


def default_render(job: JobView) -> Activity:
    if job.status == SUCCEEDED:
        message = (job.result or {}).get("message") or "Done."
        return MessageFactory.text(str(message))
    return MessageFactory.text(f"That did not work: {job.error_message}")


class JobNotifier:
    """A job kind may register its own renderer (e.g. a card showing the new tenant)."""

    def __init__(self, messenger: ProactiveMessenger, renderers: dict[str, JobRenderer] | None = None) -> None:
        self._messenger = messenger
        self._renderers = dict(renderers or {})

    async def __call__(self, job: JobView) -> None:
        if job.notify_conversation_id is None:
            return
        render = self._renderers.get(job.kind, default_render)
        await self._messenger.send(job.notify_conversation_id, render(job))
