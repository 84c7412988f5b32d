"""Private answers asked for in a channel go to the requester's 1:1 chat."""

from __future__ import annotations

from microsoft_agents.hosting.core import MessageFactory
from microsoft_agents.hosting.dialogs import WaterfallStepContext

from dialogs.base import TaskDialog, caller_of
from dialogs.catalogue import Task
from dialogs.private_replies import OPEN_A_CHAT, SENT_PRIVATELY, send_privately
from services.roles import Permission
from tests.conftest import message

THREAD = "team-id;messageid=1700000000001"


class _SecretsDialog(TaskDialog):
    title = "User list"

    def __init__(self) -> None:
        super().__init__("secrets", [self.show_step])

    async def show_step(self, step: WaterfallStepContext):
        await send_privately(step.context, caller_of(step.context), MessageFactory.text("alice@contoso.com"))
        return await step.end_dialog()


def _tasks(_services):
    return [Task("users", "Users", "List users", _SecretsDialog(), Permission.READ_SUBSCRIPTIONS)]


async def test_in_a_channel_the_answer_goes_to_the_personal_chat(make_bot, connector):
    fake, url = connector
    client = await make_bot(tasks=_tasks)
    await client.post("/api/messages", json=message("menu", service_url=url))  # the 1:1 chat exists
    await fake.wait_for(1)
    await client.post(
        "/api/messages",
        json=message("users", service_url=url, conversation_id=THREAD, conversation_type="channel", mention_bot=True),
    )
    await fake.wait_for(3)
    sent = [
        (item.conversation_id, item.activity.get("text"))
        for item in fake.received
        if item.activity["type"] == "message"
    ]
    assert ("personal-chat-alex", "alice@contoso.com") in sent
    assert (THREAD, SENT_PRIVATELY) in sent
    assert all(text != "alice@contoso.com" for conversation, text in sent if conversation == THREAD)


async def test_without_a_personal_chat_nothing_private_is_posted_in_the_channel(make_bot, connector):
    fake, url = connector
    client = await make_bot(tasks=_tasks)
    await client.post(
        "/api/messages",
        json=message("users", service_url=url, conversation_id=THREAD, conversation_type="channel", mention_bot=True),
    )
    await fake.wait_for(1)
    assert [m.get("text") for m in fake.messages()] == [OPEN_A_CHAT]


async def test_in_the_personal_chat_it_is_an_ordinary_reply(make_bot, connector):
    fake, url = connector
    client = await make_bot(tasks=_tasks)
    await client.post("/api/messages", json=message("users", service_url=url))
    await fake.wait_for(1)
    assert [m.get("text") for m in fake.messages()] == ["alice@contoso.com"]
