"""Bad input through the chat, on SQLite and on PostgreSQL (where NUL and out-of-range numbers used
to fail): each gets a clear message, changes nothing, leaves the task waiting so the person can
correct it and go on, and writes no ERROR line to the log (docs/security-input.md)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from microsoft_agents.activity import Activity, ChannelAccount, ConversationAccount
from sqlalchemy import select

from bot.inputs import MAX_FIELD_CHARS, MAX_TYPED_CHARS, clean_text, sanitise_activity
from cards import users as ui
from services.models import Approval
from tests.conftest import runtime_of
from tests.fakes import card_of, said
from tests.subscription_fixtures import buy, prepare_catalog_and_prices
from tests.test_subscriptions_bot import MEGAN, _action, _reply


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def _approvals(services) -> list[Approval]:
    async with services.sessions() as session:
        return list((await session.scalars(select(Approval))).all())


async def _suspension_form(make_bot_on_database, connector, services, demo_customer, sandbox):
    """The bot on the test's database with one subscription; Megan (approver) has said hi; Alex
    has the suspension form open."""
    fake, url = connector
    await prepare_catalog_and_prices(services)
    sid = await buy(services, demo_customer)
    client = await make_bot_on_database()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    await _reply(client, fake, url, "hi", **MEGAN)
    listing = card_of(await _reply(client, fake, url, "subscriptions"))
    assert listing is not None
    form = card_of(await _reply(client, fake, url, value=_action(listing, "Suspend")["data"]))
    assert form is not None
    return client, form, sid


# ---- control characters ------------------------------------------------------------------------


async def test_control_characters_in_a_suspension_reason_are_removed_and_the_request_goes_on(
    make_bot_on_database, connector, services, demo_customer, sandbox, caplog
):
    fake, url = connector
    client, form, _ = await _suspension_form(make_bot_on_database, connector, services, demo_customer, sandbox)
    with caplog.at_level(logging.INFO):
        submit = _action(form, "Ask an approver")["data"]
        nothing = await _reply(client, fake, url, value={**submit, "reason": "\x00\x07"})
        assert "Say why the subscription should be suspended" in said(nothing)  # the same form, waiting
        assert await _approvals(services) == []
        submit = _action(card_of(nothing), "Ask an approver")["data"]
        asked = await _reply(client, fake, url, value={**submit, "reason": "Project\x00 paused\ud800 \x1b[31m"})
    assert "asked 1 approver(s)" in said(asked)
    [approval] = await _approvals(services)
    assert approval.reason == "Project paused [31m"
    assert _errors(caplog) == []


async def test_control_characters_in_the_users_search_are_removed(
    make_bot_on_database, connector, services, demo_customer, caplog
):
    fake, url = connector
    client = await make_bot_on_database()
    await _reply(client, fake, url, "users")
    await _reply(client, fake, url, value={"verb": ui.USERS_REFRESH, "page": 1, "search_was": ""})
    with caplog.at_level(logging.INFO):
        found = await _reply(client, fake, url, value={"verb": ui.USERS_SEARCH, "search": "adm\x00in\ud800"})
        typed = await _reply(client, fake, url, "menu\x00")
    assert "admin@contosodemo.onmicrosoft.com" in said(found) and "1 user(s) match" in said(found)
    assert "What would you like to do?" in said(typed)
    assert _errors(caplog) == []


# ---- lengths -------------------------------------------------------------------------------------


async def test_too_long_input_is_refused_and_the_task_keeps_waiting(
    make_bot_on_database, connector, services, demo_customer, sandbox, caplog
):
    fake, url = connector
    client, form, _ = await _suspension_form(make_bot_on_database, connector, services, demo_customer, sandbox)
    submit = _action(form, "Ask an approver")["data"]
    with caplog.at_level(logging.INFO):
        huge_field = await _reply(client, fake, url, value={**submit, "reason": "x" * (MAX_FIELD_CHARS + 1)})
        long_reason = await _reply(client, fake, url, value={**submit, "reason": "y" * 501})
        long_text = await _reply(client, fake, url, "z" * (MAX_TYPED_CHARS + 1))
        assert await _approvals(services) == []
        asked = await _reply(client, fake, url, value={**submit, "reason": "Project paused"})
    assert "too long" in said(huge_field) and "at most 8,000 characters" in said(huge_field)
    assert "Keep the reason under 500 characters" in said(long_reason)
    assert "too long" in said(long_text) and "at most 2,000" in said(long_text)
    assert "Nothing was changed" in said(huge_field) and "Nothing was changed" in said(long_text)
    assert "asked 1 approver(s)" in said(asked)  # the form was still waiting
    assert len(await _approvals(services)) == 1
    assert _errors(caplog) == []


# ---- the sanitiser itself ------------------------------------------------------------------------


def _activity(text: str | None = None, value: Any = None) -> Activity:
    return Activity(
        type="message",
        text=text,
        value=value,
        from_property=ChannelAccount(id="u", name="Al\x00ex"),
        conversation=ConversationAccount(id="c", name="Team\x1f"),
    )


def test_clean_text_keeps_tabs_and_newlines_and_drops_every_other_control_character():
    assert clean_text("a\tb\nc") == "a\tb\nc"
    assert clean_text("one\r\ntwo\rthree") == "one\ntwo\nthree"
    assert clean_text("\x00a\x01\x08\x0b\x0c\x0e\x1f\x7fb\x80\x9f\ud800\udfffc") == "abc"
    assert clean_text("Zoë — 東京 🙂") == "Zoë — 東京 🙂"


def test_sanitise_activity_cleans_text_values_keys_and_names_in_place():
    activity = _activity("menu\x00", {"verb\x00": "x", "reason": ["a\x00b", {"c": "d\ud800"}], "n": 5})
    assert sanitise_activity(activity) is None
    assert activity.text == "menu"
    assert activity.value == {"verb": "x", "reason": ["ab", {"c": "d"}], "n": 5}
    assert activity.from_property.name == "Alex" and activity.conversation.name == "Team"


def test_sanitise_activity_refuses_over_long_or_over_deep_input():
    assert "too long" in (sanitise_activity(_activity("x" * (MAX_TYPED_CHARS + 1))) or "")
    assert sanitise_activity(_activity("x" * MAX_TYPED_CHARS)) is None
    assert "too long" in (sanitise_activity(_activity(value={"a": ["x" * (MAX_FIELD_CHARS + 1)]})) or "")
    deep: Any = "leaf"
    for _ in range(70):
        deep = [deep]
    assert "could not read" in (sanitise_activity(_activity(value=deep)) or "")

