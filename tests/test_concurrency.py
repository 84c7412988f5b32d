"""Conversations under load, restarts, double clicks and replicas — all through `/api/messages`.

The bot holds each turn's replies until the conversation state is saved and retries a turn once
when another turn saved first (e-tag conflict); these tests check what the user sees.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from microsoft_agents.hosting.core.state.agent_state import CachedAgentState
from microsoft_agents.hosting.dialogs import DialogState

from app import SETTINGS
from bot.storage import SqlStorage
from tests.conftest import message, runtime_of
from tests.dialog_fixtures import NAME_QUESTION, SURVEY_VERB, survey_tasks
from tests.fakes import FakeConnector, card_of, card_text, said

RETRY_TEXT = "Please use the card above, or type cancel."
FINISHED_CARD_TEXT = "That card belongs to a task that has finished or was cancelled"
ERROR_CARD_TEXT = "Sorry, something went wrong"
CONFLICT_LOG = "conversation state changed under this turn"


# ---- helpers ------------------------------------------------------------------------------------


def is_colour_card(activity: dict[str, Any], name: str) -> bool:
    card = card_of(activity)
    if card is None:
        return False
    inputs = [element.get("id") for element in card.get("body", []) if element.get("type") == "Input.Text"]
    # Each submit also carries the card's id (the bot's way to know which card was clicked).
    submits = [
        {key: value for key, value in action.get("data", {}).items() if key != "card_id"}
        for action in card.get("actions", [])
        if action.get("type") == "Action.Submit"
    ]
    return inputs == ["colour"] and submits == [{"verb": SURVEY_VERB}] and f"Hello {name}," in card_text(card)


def summary(name: str, colour: str) -> str:
    return f"Thanks {name}, you like {colour}."


def summaries(fake: FakeConnector, conversation_id: str) -> list[str]:
    return [said(a) for a in fake.messages(conversation_id) if said(a).startswith("Thanks ")]


def assert_nothing_leaked(fake: FakeConnector) -> None:
    """No reply shows an exception, a traceback or the error card."""
    for item in fake.received:
        text = json.dumps(item.activity, ensure_ascii=False)
        assert "Traceback" not in text, text
        assert "Exception" not in text, text
        assert ERROR_CARD_TEXT not in text, text


class Chat:
    """One user's personal conversation with the bot (the seeded demo admin, user-id-0)."""

    def __init__(self, fake: FakeConnector, url: str, conversation_id: str | None = None) -> None:
        self.fake = fake
        self.url = url
        self.conversation_id = conversation_id or f"survey-{uuid.uuid4().hex[:10]}"
        self.sent_ids: list[str] = []

    def activity(self, text: str | None = None, value: dict[str, Any] | None = None) -> dict[str, Any]:
        activity = message(text, service_url=self.url, conversation_id=self.conversation_id, value=value)
        self.sent_ids.append(activity["id"])
        return activity

    def submit(self, colour: str) -> dict[str, Any]:
        return self.activity(None, value={"verb": SURVEY_VERB, "colour": colour})

    def click_send(self, colour: str) -> dict[str, Any]:
        """Press Send on the newest colour card, as Teams would (the card's data plus the input)."""
        cards = [
            card
            for reply in self.replies()
            if (card := card_of(reply)) is not None and any(e.get("id") == "colour" for e in card.get("body", []))
        ]
        data = next(
            action["data"] for action in reversed(cards[-1]["actions"]) if action.get("type") == "Action.Submit"
        )
        return self.activity(None, value={**data, "colour": colour})

    async def post(self, client: TestClient, activity: dict[str, Any]) -> int:
        response = await client.post("/api/messages", json=activity)
        await response.read()
        return response.status

    async def send(self, client: TestClient, activity: dict[str, Any], expect_replies: int) -> list[dict[str, Any]]:
        """Send one turn; wait until the conversation has `expect_replies` replies in total."""
        status = await self.post(client, activity)
        assert status == 202, status
        await self.fake.wait_for(expect_replies, self.conversation_id)
        return self.replies()

    def replies(self) -> list[dict[str, Any]]:
        return self.fake.messages(self.conversation_id)

    def texts(self) -> list[str]:
        return [said(a) for a in self.replies()]


async def stored_dialog_state(client: TestClient, conversation_id: str) -> DialogState | None:
    storage = SqlStorage(runtime_of(client).services.sessions)
    key = f"msteams/conversations/{conversation_id}"
    items = await storage.read([key], target_cls=CachedAgentState)
    if key not in items:
        return None
    return items[key].state.get("DialogState")


def hold_first_call(target: Any, method: str, barrier: asyncio.Barrier, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make `target.method`'s first call (after it returns) wait at `barrier`; count the calls."""
    original: Callable[..., Awaitable[Any]] = getattr(target, method)
    calls: list[int] = []

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        result = await original(*args, **kwargs)
        if len(calls) == 1:
            await barrier.wait()
        return result

    monkeypatch.setattr(target, method, wrapper)
    return calls


def hold_first_reads(client: TestClient, barrier: asyncio.Barrier, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Make this replica's first state read wait at `barrier`, so two replicas read the same version."""
    return hold_first_call(runtime_of(client).bot._storage, "read", barrier, monkeypatch)


def start_remembering_together(client: TestClient, barrier: asyncio.Barrier, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make this replica's first `conversations.save` start only when the other replica's does."""
    conversations = runtime_of(client).services.conversations
    original: Callable[..., Awaitable[Any]] = conversations.save
    calls: list[int] = []

    async def save(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            await barrier.wait()
        return await original(*args, **kwargs)

    monkeypatch.setattr(conversations, "save", save)


@pytest.fixture
def bot_on(make_bot: Callable[..., Awaitable[TestClient]]) -> Callable[..., Awaitable[TestClient]]:
    async def _bot(database_url: str | None = None) -> TestClient:
        # Every conversation's turn in flight at once: the bound on concurrent turns would send some back
        # with 503 for Teams to retry (tests/test_overload.py); here every turn must run concurrently.
        bound = 2 * CONVERSATIONS
        settings: dict[str, Any] = {"max_concurrent_turns": bound, "max_working_turns": bound}
        if database_url:
            settings["database_url"] = database_url
        return await make_bot(tasks=survey_tasks, settings=settings)

    return _bot


# ---- (a) many conversations at once -------------------------------------------------------------


CONVERSATIONS = 50


async def run_survey(client: TestClient, chat: Chat, name: str, colour: str) -> list[dict[str, Any]]:
    await chat.send(client, chat.activity("survey"), 1)
    await chat.send(client, chat.activity(name), 2)
    return await chat.send(client, chat.submit(colour), 3)


async def test_fifty_concurrent_surveys_each_get_exactly_their_own_replies(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str], database_url: str
) -> None:
    fake, url = connector
    client = await bot_on(database_url)
    run = uuid.uuid4().hex[:6]
    chats = [Chat(fake, url, f"conv-{run}-{i:02d}") for i in range(CONVERSATIONS)]
    people = [(f"Person{i:02d}x{run}", f"colour{i:02d}x{run}") for i in range(CONVERSATIONS)]

    await asyncio.gather(*(run_survey(client, chat, *p) for chat, p in zip(chats, people, strict=True)))

    by_conversation = fake.by_conversation()
    assert set(by_conversation) == {chat.conversation_id for chat in chats}
    for chat, (name, colour) in zip(chats, people, strict=True):
        replies = chat.replies()
        assert len(replies) == 3, chat.texts()  # one reply per turn, no more
        question, card, thanks = replies
        assert question.get("text") == NAME_QUESTION
        assert is_colour_card(card, name), said(card)
        assert thanks.get("text") == summary(name, colour)
        # every reply answers this conversation's own turn, in order
        replies_to = [
            item.reply_to_id
            for item in fake.received
            if item.conversation_id == chat.conversation_id
            and item.activity.get("type") != "typing"
            and item.method == "POST"  # not the colour card's update into a record of the answer
        ]
        assert replies_to == chat.sent_ids
        assert all(reply["conversation"]["id"] == chat.conversation_id for reply in replies)
        # no cross-talk: nobody else's name or colour appears here
        text = " ".join(chat.texts())
        others = [p for p in people if p != (name, colour)]
        assert not any(other_name in text or other_colour in text for other_name, other_colour in others)
    assert len(fake.messages()) == 3 * CONVERSATIONS
    assert_nothing_leaked(fake)
    for chat in chats[:5]:
        assert await stored_dialog_state(client, chat.conversation_id) == DialogState()


# ---- (b) a restart between turns ----------------------------------------------------------------


async def test_dialog_survives_a_restart(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str]
) -> None:
    fake, url = connector
    chat = Chat(fake, url)
    first = await bot_on()
    await chat.send(first, chat.activity("survey"), 1)
    await chat.send(first, chat.activity("Grace Hopper"), 2)
    database = first.app[SETTINGS].database_url
    await first.close()  # the app's cleanup runs: engine disposed, job runner stopped

    second = await bot_on()
    assert second.app is not first.app
    assert second.app[SETTINGS].database_url == database  # make_bot: one SQLite file per test
    await chat.send(second, chat.submit("teal"), 3)

    assert chat.texts()[2] == summary("Grace Hopper", "teal")
    assert len(chat.replies()) == 3
    assert_nothing_leaked(fake)


async def test_every_turn_on_a_fresh_app(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str]
) -> None:
    fake, url = connector
    chat = Chat(fake, url)
    for count, activity in enumerate([chat.activity("survey"), chat.activity("Ada"), chat.submit("green")], start=1):
        client = await bot_on()
        await chat.send(client, activity, count)
        await client.close()
    assert chat.texts()[0] == NAME_QUESTION
    assert is_colour_card(chat.replies()[1], "Ada")
    assert chat.texts()[2] == summary("Ada", "green")
    assert_nothing_leaked(fake)


# ---- (c) a double click on the card -------------------------------------------------------------


@pytest.mark.parametrize("same_activity_id", [False, True], ids=["two-clicks", "redelivery"])
async def test_double_click_on_the_card_gives_one_summary(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str], same_activity_id: bool
) -> None:
    fake, url = connector
    client = await bot_on()
    chat = Chat(fake, url)
    await chat.send(client, chat.activity("survey"), 1)
    await chat.send(client, chat.activity("Linus"), 2)

    click = chat.submit("orange")
    second_click = dict(click) if same_activity_id else chat.submit("orange")
    statuses = await asyncio.gather(chat.post(client, click), chat.post(client, second_click))
    assert statuses == [202, 202]
    await fake.wait_for(3, chat.conversation_id)

    texts = chat.texts()  # both POSTs were answered after their turns: every reply has arrived
    assert summaries(fake, chat.conversation_id) == [summary("Linus", "orange")]
    polite = [t for t in texts[2:] if not t.startswith("Thanks ")]
    if same_activity_id:  # Teams re-sending the click: dropped, no extra message
        assert len(texts) == 3 and polite == [], texts
    else:  # a second click: told the card is done
        assert len(texts) == 4 and len(polite) == 1 and FINISHED_CARD_TEXT in polite[0], texts
    assert_nothing_leaked(fake)
    assert await stored_dialog_state(client, chat.conversation_id) == DialogState()


# ---- (d) two replicas on one database -----------------------------------------------------------


async def test_replicas_racing_on_one_conversation_complete_the_dialog_once(
    bot_on: Callable[..., Awaitable[TestClient]],
    connector: tuple[FakeConnector, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    fake, url = connector
    replica_a = await bot_on(database_url)
    replica_b = await bot_on(database_url)
    chat = Chat(fake, url)
    await chat.send(replica_a, chat.activity("survey"), 1)
    await chat.send(replica_b, chat.activity("Barbara"), 2)  # the other replica continues the dialog

    # Both replicas read the same state version before either saves: a guaranteed e-tag conflict.
    barrier = asyncio.Barrier(2)
    reads_a = hold_first_reads(replica_a, barrier, monkeypatch)
    reads_b = hold_first_reads(replica_b, barrier, monkeypatch)
    caplog.set_level(logging.INFO, logger="bot.handler")
    statuses = await asyncio.gather(
        chat.post(replica_a, chat.submit("violet")), chat.post(replica_b, chat.submit("violet"))
    )
    assert statuses == [202, 202]  # no 500
    await fake.wait_for(4, chat.conversation_id)

    assert sorted([len(reads_a), len(reads_b)]) == [1, 2]  # exactly one turn was run again
    assert any(CONFLICT_LOG in record.getMessage() for record in caplog.records)
    texts = chat.texts()
    assert len(texts) == 4, texts
    assert summaries(fake, chat.conversation_id) == [summary("Barbara", "violet")]
    assert sum(FINISHED_CARD_TEXT in t for t in texts) == 1
    assert_nothing_leaked(fake)
    for replica in (replica_a, replica_b):
        assert await stored_dialog_state(replica, chat.conversation_id) == DialogState()

    # The conversation is not lost: it carries on normally on either replica.
    await chat.send(replica_b, chat.activity("survey"), 5)
    await chat.send(replica_a, chat.activity("Barbara again"), 6)
    await chat.send(replica_b, chat.submit("red"), 7)
    assert chat.texts()[4:] == [NAME_QUESTION, said(chat.replies()[5]), summary("Barbara again", "red")]


async def test_replicas_racing_on_different_steps_keep_the_state_consistent(
    bot_on: Callable[..., Awaitable[TestClient]],
    connector: tuple[FakeConnector, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A typed name and "help" arrive together at two replicas: both are answered, in some order."""
    fake, url = connector
    replica_a = await bot_on(database_url)
    replica_b = await bot_on(database_url)
    chat = Chat(fake, url)
    await chat.send(replica_a, chat.activity("survey"), 1)

    barrier = asyncio.Barrier(2)
    hold_first_reads(replica_a, barrier, monkeypatch)
    hold_first_reads(replica_b, barrier, monkeypatch)
    statuses = await asyncio.gather(
        chat.post(replica_a, chat.activity("Katherine")), chat.post(replica_b, chat.activity("help"))
    )
    assert statuses == [202, 202]
    await fake.wait_for(3, chat.conversation_id)

    replies = chat.replies()
    assert len(replies) == 3, chat.texts()
    assert sum(is_colour_card(reply, "Katherine") for reply in replies[1:]) == 1
    assert sum("You are in **the survey**" in said(reply) for reply in replies[1:]) == 1
    await chat.send(replica_b, chat.submit("indigo"), 4)
    assert summaries(fake, chat.conversation_id) == [summary("Katherine", "indigo")]
    assert_nothing_leaked(fake)


async def test_replicas_racing_on_a_brand_new_conversation(
    bot_on: Callable[..., Awaitable[TestClient]],
    connector: tuple[FakeConnector, str],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first two messages of a new conversation reach two replicas at once.

    Both find no state (so both write it create-only) and both remember the new conversation.
    The loser must be retried like any other conflict, not shown an error card.
    """
    fake, url = connector
    replica_a = await bot_on(database_url)
    replica_b = await bot_on(database_url)
    chat = Chat(fake, url)

    read_barrier, remember_barrier = asyncio.Barrier(2), asyncio.Barrier(2)
    for replica in (replica_a, replica_b):
        hold_first_reads(replica, read_barrier, monkeypatch)  # both see "no state yet"
        start_remembering_together(replica, remember_barrier, monkeypatch)  # both store the new reference
    statuses = await asyncio.gather(
        chat.post(replica_a, chat.activity("survey")), chat.post(replica_b, chat.activity("survey"))
    )
    assert statuses == [202, 202]
    await fake.wait_for(2, chat.conversation_id)

    assert_nothing_leaked(fake)
    # Serialised, the second "survey" is the answer to "What is your name?".
    replies = chat.replies()
    assert len(replies) == 2, chat.texts()
    assert replies[0].get("text") == NAME_QUESTION
    assert is_colour_card(replies[1], "survey")
    await chat.send(replica_a, chat.submit("gold"), 3)
    assert summaries(fake, chat.conversation_id) == [summary("survey", "gold")]
    assert await runtime_of(replica_a).services.conversations.get(chat.conversation_id) is not None


# ---- (e) typing, help and cancel while the card waits ---------------------------------------------


async def test_typed_text_while_the_card_waits_gets_the_retry_prompt(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str]
) -> None:
    fake, url = connector
    client = await bot_on()
    chat = Chat(fake, url)
    await chat.send(client, chat.activity("survey"), 1)
    await chat.send(client, chat.activity("Edsger"), 2)

    await chat.send(client, chat.activity("blue, I think"), 3)
    assert chat.texts()[2] == RETRY_TEXT
    await chat.send(client, chat.activity("menus please"), 4)  # not a command, not a card submit
    assert chat.texts()[3] == RETRY_TEXT

    await chat.send(client, chat.submit("blue"), 5)  # the dialog was still waiting
    assert chat.texts()[4] == summary("Edsger", "blue")
    assert len(chat.replies()) == 5
    assert_nothing_leaked(fake)


@pytest.mark.parametrize("typed", ["menu", "survey"])
async def test_a_typed_command_while_the_card_waits_leaves_the_task_for_it(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str], typed: str
) -> None:
    """Teams' command list types commands: one while a task waits starts that task (or the menu)."""
    fake, url = connector
    client = await bot_on()
    chat = Chat(fake, url)
    await chat.send(client, chat.activity("survey"), 1)
    await chat.send(client, chat.activity("Edsger"), 2)

    if typed == "menu":
        replies = await chat.send(client, chat.activity(typed), 4)
        assert chat.texts()[2] == "Stopped **the survey**; nothing more was changed there."
        assert "What would you like to do?" in card_text(card_of(replies[-1]))
    else:  # the same task typed again starts afresh, without a "Stopped" notice
        await chat.send(client, chat.activity(typed), 3)
        assert chat.texts()[2] == NAME_QUESTION
    [record] = fake.records(chat.conversation_id)  # the waiting card no longer looks live
    assert "Stopped" in card_text(card_of(record.activity)) or "Started again" in card_text(card_of(record.activity))
    await chat.send(client, chat.click_send("black"), len(chat.replies()) + 1)  # the old card runs nothing
    assert "is from an earlier **the survey**" in chat.texts()[-1] and "nothing was done" in chat.texts()[-1]
    assert summaries(fake, chat.conversation_id) == []
    assert_nothing_leaked(fake)


@pytest.mark.parametrize("at_step", ["name", "card"])
async def test_cancel_ends_the_survey(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str], at_step: str
) -> None:
    fake, url = connector
    client = await bot_on()
    chat = Chat(fake, url)
    await chat.send(client, chat.activity("survey"), 1)
    count = 1
    if at_step == "card":
        count = len(await chat.send(client, chat.activity("Alan"), 2))

    await chat.send(client, chat.activity("Cancel"), count + 1)
    assert chat.texts()[count] == "Cancelled the survey. Nothing more was changed."
    assert await stored_dialog_state(client, chat.conversation_id) == DialogState()

    await chat.send(client, chat.submit("black"), count + 2)  # the old card no longer runs anything
    assert FINISHED_CARD_TEXT in chat.texts()[count + 1]
    assert summaries(fake, chat.conversation_id) == []
    assert_nothing_leaked(fake)


@pytest.mark.parametrize("at_step", ["name", "card"])
async def test_help_inside_the_survey_keeps_it_going(
    bot_on: Callable[..., Awaitable[TestClient]], connector: tuple[FakeConnector, str], at_step: str
) -> None:
    fake, url = connector
    client = await bot_on()
    chat = Chat(fake, url)
    await chat.send(client, chat.activity("survey"), 1)
    count = 1
    if at_step == "card":
        count = len(await chat.send(client, chat.activity("Barbara"), 2))

    replies = await chat.send(client, chat.activity("help"), count + 1)
    help_card = card_of(replies[count])
    assert help_card is not None
    assert "You are in **the survey**" in card_text(help_card)
    assert "How to use this bot" in card_text(help_card)

    if at_step == "name":
        await chat.send(client, chat.activity("Barbara"), count + 2)
        assert is_colour_card(chat.replies()[count + 1], "Barbara")
        count += 1
    await chat.send(client, chat.submit("silver"), count + 2)
    assert chat.texts()[-1] == summary("Barbara", "silver")
    assert len(chat.replies()) == count + 2
    assert_nothing_leaked(fake)
