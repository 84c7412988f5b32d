"""The conversation skeleton through the real HTTP endpoint: welcome, menu, help, cancel, unknown
text, unregistered callers, channels, invokes and turn errors."""

from __future__ import annotations

import asyncio
import logging

from microsoft_agents.hosting.dialogs import WaterfallStepContext
from sqlalchemy import func, select

from dialogs.base import TaskDialog
from dialogs.catalogue import Task
from services.errors import InvalidInput
from services.models import BotStateRow, ConversationReferenceRow
from services.roles import Permission
from services.seed import DEMO_SLUG
from tests.cardcheck import assert_valid_activity_cards
from tests.conftest import message, runtime_of
from tests.fakes import said as _said


async def _say(client, fake, text, url, count, **kwargs):
    response = await client.post("/api/messages", json=message(text, service_url=url, **kwargs))
    assert response.status == 202
    await fake.wait_for(count)
    reply = fake.messages()[count - 1]
    assert_valid_activity_cards(reply)
    return reply


async def test_install_sends_the_welcome_card_and_remembers_the_conversation(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    update = message(None, service_url=url)
    update.update(type="conversationUpdate", membersAdded=[{"id": "28:bot-id"}])
    response = await client.post("/api/messages", json=update)
    assert response.status == 202
    await fake.wait_for(1)
    assert "Welcome, Alex Wilber" in _said(fake.messages()[0])
    stored = await runtime_of(client).services.conversations.get("personal-chat-alex")
    assert stored is not None and stored.member_id is not None
    assert stored.reference["serviceUrl"] == url


async def test_menu_help_cancel_and_unknown_text(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    assert "What would you like to do?" in _said(await _say(client, fake, "menu", url, 1))
    assert "How to use this bot" in _said(await _say(client, fake, "help", url, 2))
    assert "nothing to cancel" in _said(await _say(client, fake, "cancel", url, 3))
    assert "Did you mean **help**" in _said(await _say(client, fake, "hlep", url, 4))
    assert "Type **menu**" in _said(await _say(client, fake, "tell me a joke", url, 5))


async def test_a_fast_turn_needs_no_typing_indicator(make_bot, connector):
    fake, url = connector
    client = await make_bot(settings={"typing_indicator_delay_seconds": 5})
    await _say(client, fake, "menu", url, 1)
    kinds = [item.activity["type"] for item in fake.received]
    assert kinds == ["message"]


class _SlowDialog(TaskDialog):
    def __init__(self) -> None:
        super().__init__("slow_dialog", [self.work_step])

    async def work_step(self, step_context: WaterfallStepContext):
        await asyncio.sleep(0.3)  # e.g. a slow call to Microsoft
        await step_context.context.send_activity("Done.")
        return await step_context.end_dialog()


def _slow_tasks(_services):
    return [Task("slow", "a slow task", "tests only", _SlowDialog(), Permission.READ_SUBSCRIPTIONS)]


class _KeepingUp:
    """An event loop that is never behind: on a busy test machine the real monitor could see a lag
    (a garbage collection, another process) and rightly skip the indicator (tests/test_overload.py)."""

    def lagging(self) -> bool:
        return False


async def test_a_slow_turn_shows_typing_before_its_reply(make_bot, connector):
    fake, url = connector
    client = await make_bot(tasks=_slow_tasks, loop_lag=_KeepingUp(), settings={"typing_indicator_delay_seconds": 0.05})
    assert "Done." in _said(await _say(client, fake, "slow", url, 1))
    kinds = [item.activity["type"] for item in fake.received]
    assert kinds == ["typing", "message"]


async def test_a_slow_turn_in_a_channel_shows_no_typing(make_bot, connector):
    """Teams shows "typing…" in chats only; in a channel's thread it would be a request for nothing
    (and the Playground's page fails on it)."""
    fake, url = connector
    client = await make_bot(tasks=_slow_tasks, loop_lag=_KeepingUp(), settings={"typing_indicator_delay_seconds": 0.05})
    thread = {"conversation_id": "team-id;messageid=1700000000001", "conversation_type": "channel", "mention_bot": True}
    assert "Done." in _said(await _say(client, fake, "slow", url, 1, **thread))
    assert [item.activity["type"] for item in fake.received] == ["message"]


async def test_menu_button_submit_works_like_typing(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    reply = await _say(client, fake, None, url, 1, value={"verb": "command", "command": "help"})
    assert "How to use this bot" in _said(reply)


async def test_unknown_caller_only_gets_the_not_registered_card(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    stranger = {"user_id": "user-id-9", "name": "Pat Stranger", "aad_object_id": "aad-stranger"}
    for count, text in enumerate(["menu", "help", "add tenant"], start=1):
        said = _said(await _say(client, fake, text, url, count, **stranger))
        assert "not registered" in said
        assert "What would you like to do?" not in said


async def test_strangers_leave_nothing_stored_however_many_write(make_bot, connector):
    """Only a member's conversation is remembered (proactive messages only ever go to members): callers
    who are no member — from any tenant, writing or installing the app — store no reference and no state."""
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    for n in range(1, 31):
        stranger = {
            "user_id": f"29:stranger-{n}",
            "name": "Pat Stranger",
            "aad_object_id": f"aad-stranger-{n}",
            "conversation_id": f"personal-chat-stranger-{n}",
            "tenant_id": f"stranger-tenant-{n % 3}",
        }
        if n % 2:
            assert "not registered" in _said(await _say(client, fake, "hello", url, n, **stranger))
        else:
            install = message(None, service_url=url, **stranger)
            install.update(type="conversationUpdate", membersAdded=[{"id": "28:bot-id"}])
            assert (await client.post("/api/messages", json=install)).status == 202
            await fake.wait_for(n)
            assert "not registered" in _said(fake.messages()[n - 1])

    async def stored() -> tuple[int | None, int | None]:
        async with services.sessions() as session:
            references = await session.scalar(select(func.count()).select_from(ConversationReferenceRow))
            states = await session.scalar(select(func.count()).select_from(BotStateRow))
        return references, states

    assert await stored() == (0, 0)
    await _say(client, fake, "menu", url, 31)  # the demo admin
    assert (await stored())[0] == 1


async def test_caller_of_another_tenant_is_not_the_demo_admin(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    said = _said(await _say(client, fake, "menu", url, 1, tenant_id="another-tenant"))
    assert "not registered" in said


async def test_channel_message_with_mention_is_answered_in_the_thread(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    thread = "team-id;messageid=1700000000000"
    reply = await _say(
        client, fake, "menu", url, 1, conversation_id=thread, conversation_type="channel", mention_bot=True
    )
    assert "What would you like to do?" in _said(reply)
    assert fake.received[-1].conversation_id == thread


async def test_stale_card_submit_outside_a_task_gets_a_clear_message(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    reply = await _say(client, fake, None, url, 1, value={"verb": "survey_colour", "colour": "red"})
    assert "finished or was cancelled" in _said(reply)


async def test_card_action_invokes_never_fail_with_500(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    for value in (
        {"action": {"type": "Action.Execute", "verb": "no_such_verb", "data": {}}},
        {"action": "not-an-object"},
        None,
    ):
        invoke = message(None, service_url=url)  # each a new activity, with its own id
        invoke.update(type="invoke", name="adaptiveCard/action", value=value)
        response = await client.post("/api/messages", json=invoke)
        assert response.status == 200
        body = await response.json()
        assert body["statusCode"] == 200
        assert body["type"] == "application/vnd.microsoft.activity.message"
        assert "out of date" in body["value"]


class _FaultyDialog(TaskDialog):
    title = "Faulty"

    def __init__(self) -> None:
        super().__init__("faulty", [self.ask_step, self.explode_step])

    async def ask_step(self, step: WaterfallStepContext):
        return await step.prompt(
            "card_prompt",
            self.prompt_card({"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "go"}]}),
        )

    async def explode_step(self, step: WaterfallStepContext):
        value = step.result or {}
        if value.get("mode") == "domain":
            raise InvalidInput("The quantity must be between 1 and 300.")
        raise RuntimeError("database password is hunter2")  # must never reach the user


def _faulty_tasks(_services):
    return [Task("faulty", "Faulty", "Fails on purpose", _FaultyDialog(), Permission.READ_SUBSCRIPTIONS)]


async def test_domain_error_shows_its_message_and_keeps_the_dialog(make_bot, connector):
    fake, url = connector
    client = await make_bot(tasks=_faulty_tasks)
    await _say(client, fake, "faulty", url, 1)
    reply = await _say(client, fake, None, url, 2, value={"verb": "go", "mode": "domain"})
    assert reply["text"] == "The quantity must be between 1 and 300."
    # The dialog is still waiting for the card: typed text gets the card's retry prompt.
    reply = await _say(client, fake, "hello?", url, 3)
    assert "Please use the card above" in reply["text"]


async def test_unexpected_error_resets_the_dialog_and_shows_only_a_reference(make_bot, connector, caplog):
    fake, url = connector
    client = await make_bot(tasks=_faulty_tasks)
    await _say(client, fake, "faulty", url, 1)
    with caplog.at_level(logging.ERROR):
        reply = await _say(client, fake, None, url, 2, value={"verb": "go", "mode": "crash"})
    said = _said(reply)
    assert "Sorry, something went wrong" in said
    assert "hunter2" not in str(reply) and "Traceback" not in str(reply)
    failure = next(r for r in caplog.records if "turn failed" in r.getMessage())
    reference = failure.getMessage().split("reference ")[1].rstrip(")")
    assert reference in said  # the user's reference finds the full error in the log
    assert failure.exc_info is not None
    # The dialog stack was reset: the next message starts afresh.
    assert "nothing to cancel" in _said(await _say(client, fake, "cancel", url, 3))


async def test_malformed_activities_are_rejected_with_400(make_bot, connector):
    _, url = connector
    client = await make_bot()
    for body in ("not json", "[1, 2]", '{"type": "message"}', '{"type": 5, "conversation": {"id": "x"}}'):
        response = await client.post("/api/messages", data=body, headers={"Content-Type": "application/json"})
        assert response.status == 400, body


async def test_health_reports_database_version_and_alerts(make_bot):
    client = await make_bot()
    response = await client.get("/healthz")
    assert response.status == 200
    body = await response.json()
    assert body["database"] == "ok" and body["open_alerts"] == 0 and body["status"] == "ok"
    assert body["authentication"] == "none (local only)"
    await runtime_of(client).services.alerts.raise_alert("unpriced_product", "Product X has no price")
    body = await (await client.get("/healthz")).json()
    assert body["open_alerts"] == 1 and body["status"] == "degraded"


async def test_a_member_registered_by_email_is_bound_on_first_contact_through_the_roster(make_bot, connector):
    """The reseller registered pat@contoso.com by e-mail only; Pat's first message carries an AAD object id
    the bot does not know. The conversation roster (Teams' get-member call) gives Pat's UPN, so the
    member is bound and served; the binding sticks, and the same UPN cannot be claimed again."""
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    await services.organisations.add_member(DEMO_SLUG, "pat@contoso.com", ["billing"], actor="tests")
    pat = {"user_id": "29:pat", "name": "Pat Kim", "aad_object_id": "aad-pat", "conversation_id": "personal-chat-pat"}
    # Not in the roster (yet): an unknown caller.
    assert "not registered" in _said(await _say(client, fake, "menu", url, 1, **pat))
    fake.members["29:pat"] = {"id": "29:pat", "name": "Pat Kim", "userPrincipalName": "Pat@Contoso.com"}
    menu = _said(await _say(client, fake, "menu", url, 2, **pat))
    assert "What would you like to do?" in menu and "not registered" not in menu
    member = next(m for m in (await services.organisations.get(DEMO_SLUG)).members if m.email == "pat@contoso.com")
    assert member.aad_object_id == "aad-pat"
    # Unknown, Pat's chat was not remembered; as a member it is, so proactive messages reach Pat.
    chat = await services.conversations.personal_chat_of(member.id)
    assert chat is not None and chat.conversation_id == "personal-chat-pat"
    # Someone else whose roster entry shows the same UPN is not bound to Pat's membership.
    fake.members["29:eve"] = {"id": "29:eve", "name": "Eve", "userPrincipalName": "pat@contoso.com"}
    eve = {"user_id": "29:eve", "name": "Eve", "aad_object_id": "aad-eve", "conversation_id": "personal-chat-eve"}
    assert "not registered" in _said(await _say(client, fake, "menu", url, 3, **eve))


async def test_health_names_the_version_and_says_down_when_the_database_is_unreachable(make_bot, monkeypatch):
    from dataclasses import replace

    from app import RUNTIME, version

    client = await make_bot()
    body = await (await client.get("/healthz")).json()
    assert body["version"] == version() and body["version"] != "0+unknown"

    class Unreachable:
        def connect(self):
            raise ConnectionRefusedError("database gone")

    runtime = runtime_of(client)
    # Only the health check sees the broken engine (the job runner keeps its sessions).
    monkeypatch.setitem(client.app, RUNTIME, replace(runtime, services=replace(runtime.services, engine=Unreachable())))
    response = await client.get("/healthz")
    assert response.status == 503
    body = await response.json()
    assert body["status"] == "down" and body["database"] == "unreachable" and body["open_alerts"] is None
    assert "database gone" not in str(body)


async def test_a_card_shared_from_the_message_extension_gets_no_answer(make_bot, connector):
    """Alex puts a bill from the message extension into our chat: it is shown to people, not said to
    the bot, so the bot does not answer "I did not catch that" (nor reads it as a command)."""
    fake, url = connector
    client = await make_bot()
    shared = message(
        '<span class="inline-compose-card" itemid="0" itemtype="http://schema.skype.com/InputExtension"></span>',
        service_url=url,
    )
    card = {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "text": "Bill — December 2026"}]}
    shared["attachments"] = [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}]
    assert (await client.post("/api/messages", json=shared)).status == 202
    # Turns of one conversation run in order: the next answer is to "menu", nothing came before it.
    assert "What would you like to do?" in _said(await _say(client, fake, "menu", url, 1))
    assert len(fake.messages()) == 1
    # A card with words typed beside it is read as usual.
    shared["id"], shared["text"] = "another-id", "help"
    assert (await client.post("/api/messages", json=shared)).status == 202
    await fake.wait_for(2)
    assert "How to use this bot" in _said(fake.messages()[1])
