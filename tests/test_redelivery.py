"""A re-delivered activity (Teams retries one that got no answer in time, with the same activity id)
has exactly one effect and no extra reply — on SQLite and PostgreSQL, and across two app instances on
one database. Activities without an id, and invokes that only read, are taken every time; a turn
cut off before it answered lets its re-delivery run. Receipts expire."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from microsoft_agents.activity import AdaptiveCardInvokeResponse
from microsoft_agents.hosting.dialogs import WaterfallStepContext
from sqlalchemy import func, select

from dialogs.base import TaskDialog
from dialogs.catalogue import Task
from services.activity_receipts import ActivityReceipts, receipt_key
from services.db import create_engine, create_session_factory, utcnow
from services.migrate import upgrade_database
from services.models import ActivityReceipt, Job
from services.roles import Permission
from tests.chat import Chat, button, inputs
from tests.conftest import message, runtime_of
from tests.fakes import said


async def test_a_redelivered_card_submit_has_one_effect_and_no_extra_message(make_bot, connector, database_url):
    """Creating the tenant is submitted; Teams re-sends the submit. Before, the re-delivery found the task
    finished and posted "That card belongs to a task that has finished…"."""
    fake, url = connector
    client = await make_bot(settings={"database_url": database_url}, run_jobs=False)
    chat = Chat(client, fake, url)
    start = await chat.card("add tenant")
    form = await chat.card(value=button(start, "Create a new tenant"))
    confirm = await chat.card(value={**inputs(form), **button(form, "Check and continue")})
    submit = message(
        None,
        service_url=url,
        value={**inputs(confirm), **button(confirm, "Create the tenant"), "mca_accept": "true"},
        activity_id="1733500000001",
    )
    assert (await client.post("/api/messages", json=submit)).status == 202
    [working] = await chat.wait(1)
    assert "Working on it" in said(working)

    again = await client.post("/api/messages", json=submit)
    assert again.status == 202  # answered after the turn: any reply would have been sent by now
    assert len(fake.messages()) == chat.seen
    async with runtime_of(client).services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "tenant.create")) == 1
    [menu] = await chat.send("menu")  # the next message gets the next reply: nothing was in between
    assert "What would you like to do?" in said(menu)


async def test_a_repeated_message_is_dropped_but_messages_without_an_id_are_each_answered(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    menu = message("menu", service_url=url, activity_id="1733500000002")
    for _ in range(2):
        assert (await client.post("/api/messages", json=menu)).status == 202
    assert len(fake.messages()) == 1
    no_id = message("help", service_url=url)
    del no_id["id"]
    for _ in range(2):
        assert (await client.post("/api/messages", json=no_id)).status == 202
    assert len(fake.messages()) == 3


def _counting_invokes(calls: list[dict[str, Any]]):
    def factory(_services, _messenger):
        async def count(_turn_context, _caller, data):
            calls.append(data)
            return AdaptiveCardInvokeResponse(
                status_code=200, type="application/vnd.microsoft.activity.message", value="counted"
            )  # type: ignore[arg-type]

        return {"tests.count": count}

    return factory


async def test_a_repeated_card_action_gets_a_harmless_answer_and_acts_once(make_bot, connector):
    fake, url = connector
    calls: list[dict[str, Any]] = []
    client = await make_bot(invokes=_counting_invokes(calls))
    invoke = message(None, service_url=url, activity_id="f:1733500000003")
    invoke.update(type="invoke", name="adaptiveCard/action")
    invoke["value"] = {"action": {"type": "Action.Execute", "verb": "tests.count", "data": {}}, "trigger": "manual"}
    first = await client.post("/api/messages", json=invoke)
    assert first.status == 200 and (await first.json())["value"] == "counted"
    again = await client.post("/api/messages", json=invoke)
    assert again.status == 200
    body = await again.json()
    assert body["type"] == "application/vnd.microsoft.activity.message" and "Already received" in body["value"]
    assert len(calls) == 1 and fake.messages() == []
    # A card's automatic refresh only reads: each delivery is answered.
    invoke.update(id="f:1733500000004", value={**invoke["value"], "trigger": "automatic"})
    for _ in range(2):
        refreshed = await client.post("/api/messages", json=invoke)
        assert (await refreshed.json())["value"] == "counted"
    assert len(calls) == 3


async def test_two_instances_on_one_database_take_a_redelivered_activity_once(make_bot, connector, database_url):
    fake, url = connector
    first = await make_bot(settings={"database_url": database_url})
    second = await make_bot(settings={"database_url": database_url})
    menu = message("menu", service_url=url, activity_id="1733500000005")
    answers = await asyncio.gather(*(app.post("/api/messages", json=menu) for app in (first, second, first, second)))
    assert [answer.status for answer in answers] == [202] * 4
    assert len(fake.messages()) == 1


class _CutOffDialog(TaskDialog):
    """Stops like a replica shutting down mid-turn: the turn is cancelled before it answers."""

    def __init__(self) -> None:
        super().__init__("cut_off_dialog", [self.work_step])
        self.runs = 0

    async def work_step(self, step_context: WaterfallStepContext):
        self.runs += 1
        if self.runs == 1:
            raise asyncio.CancelledError
        await step_context.context.send_activity("Done at last.")
        return await step_context.end_dialog()


async def test_a_turn_cut_off_before_it_answered_runs_again_when_redelivered(make_bot, connector):
    fake, url = connector
    dialog = _CutOffDialog()
    client = await make_bot(
        tasks=lambda _services: [Task("cut off", "cut off", "tests only", dialog, Permission.READ_SUBSCRIPTIONS)]
    )
    activity = message("cut off", service_url=url, activity_id="1733500000006")
    with pytest.raises(aiohttp.ServerDisconnectedError):  # no answer, as from a replica that stopped
        await client.post("/api/messages", json=activity)
    assert fake.messages() == []
    assert (await client.post("/api/messages", json=activity)).status == 202
    await fake.wait_for(1)
    assert said(fake.messages()[0]) == "Done at last." and dialog.runs == 2


async def test_receipts_expire_and_are_swept(database_url):
    engine = create_engine(database_url)
    try:
        await upgrade_database(engine)
        now = [utcnow()]
        receipts = ActivityReceipts(
            create_session_factory(engine), clock=lambda: now[0], retention=timedelta(hours=24),
            sweep_every=timedelta(minutes=10),
        )  # fmt: skip
        old = receipt_key("msteams", "a:conversation", "1")
        assert await receipts.take(old) and not await receipts.take(old)
        now[0] += timedelta(hours=25)
        assert await receipts.take(receipt_key("msteams", "a:conversation", "2"))  # sweeps on the way
        async with create_session_factory(engine)() as session:
            kept = list(await session.scalars(select(ActivityReceipt.key)))
        assert kept == [receipt_key("msteams", "a:conversation", "2")]
        assert await receipts.take(old)  # a day later the old id is new again
    finally:
        await engine.dispose()
