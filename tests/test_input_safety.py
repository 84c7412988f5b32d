"""Bad input through the chat, on SQLite and on PostgreSQL (where NUL and out-of-range numbers used
to fail): each gets a clear message, changes nothing, leaves the task waiting so the person can
correct it and go on, and writes no ERROR line to the log (docs/security-input.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from microsoft_agents.activity import Activity, ChannelAccount, ConversationAccount
from sqlalchemy import select

from bot.inputs import MAX_FIELD_CHARS, MAX_TYPED_CHARS, clean_text, sanitise_activity
from cards import subscriptions as subscription_cards
from cards import users as ui
from services.models import Approval
from tests.conftest import runtime_of
from tests.fakes import card_of, said
from tests.subscription_fixtures import buy, prepare_catalog_and_prices
from tests.test_subscriptions_bot import MEGAN, _action, _invoke, _reply


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
    assert "asked 1 approver" in said(asked)
    [approval] = await _approvals(services)
    assert approval.reason == "Project paused [31m"
    assert _errors(caplog) == []


@pytest.mark.usefixtures("services", "demo_customer")
async def test_control_characters_in_the_users_search_are_removed(make_bot_on_database, connector, caplog):
    fake, url = connector
    client = await make_bot_on_database()
    await _reply(client, fake, url, "users")
    await _reply(client, fake, url, value={"verb": ui.USERS_REFRESH, "page": 1, "search_was": ""})
    with caplog.at_level(logging.INFO):
        found = await _reply(client, fake, url, value={"verb": ui.USERS_SEARCH, "search": "adm\x00in\ud800"})
        typed = await _reply(client, fake, url, "menu\x00")
    assert "admin@contosodemo.onmicrosoft.com" in said(found) and "1 user matches" in said(found)
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
        # The form shown again (in place, where the person now clicks) is still waiting.
        shown_again = _action(card_of(long_reason), "Ask an approver")["data"]
        asked = await _reply(client, fake, url, value={**shown_again, "reason": "Project paused"})
    assert "too long" in said(huge_field) and "at most 8,000 characters" in said(huge_field)
    assert "Keep the reason under 500 characters" in said(long_reason)
    assert "too long" in said(long_text) and "at most 2,000" in said(long_text)
    assert "Nothing was changed" in said(huge_field) and "Nothing was changed" in said(long_text)
    assert "asked 1 approver" in said(asked)  # the form was still waiting
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


# ---- ids and numbers from card payloads ------------------------------------------------------------

BAD_IDS = [10**30, 2**31, 0, -1, 1.0, float("inf"), True, "1e400", "²", "", "12abc", [1], {"id": 1}, None]


async def _requested_approval(make_bot_on_database, connector, services, demo_customer, sandbox):
    fake, url = connector
    client, form, sid = await _suspension_form(make_bot_on_database, connector, services, demo_customer, sandbox)
    submit = _action(form, "Ask an approver")["data"]
    assert "asked 1 approver" in said(await _reply(client, fake, url, value={**submit, "reason": "Paused"}))
    [approval] = await _approvals(services)
    return client, approval.id, sid


async def test_out_of_range_or_malformed_approval_ids_are_not_ours(
    make_bot_on_database, connector, services, demo_customer, sandbox, caplog
):
    _, url = connector
    client, approval_id, _ = await _requested_approval(
        make_bot_on_database, connector, services, demo_customer, sandbox
    )
    with caplog.at_level(logging.INFO):
        for bad in BAD_IDS:
            for verb in ("approval_approve", "approval_reject", "approval_retry", "approval_refresh"):
                status, body = await _invoke(client, url, verb, {"approval_id": bad}, **MEGAN)
                assert status == 200, (verb, bad)
                assert body["value"] == "That request is not one of your organisation's.", (verb, bad, body)
    assert [approval.status for approval in await _approvals(services)] == ["pending"]  # nothing changed
    assert _errors(caplog) == []
    status, body = await _invoke(client, url, "approval_reject", {"approval_id": str(approval_id)}, **MEGAN)
    assert status == 200 and "Rejected" in json.dumps(body)  # the card still works
    assert [approval.status for approval in await _approvals(services)] == ["rejected"]


BAD_QUANTITIES = [10**30, -5, 1.5, float("inf"), "1e400", "²", "١٢", "12 seats", True, [12], {"n": 12}, None]


async def test_bad_seat_quantities_are_refused_on_the_same_card(
    make_bot_on_database, connector, services, demo_customer, sandbox, caplog
):
    fake, url = connector
    await prepare_catalog_and_prices(services)
    sid = await buy(services, demo_customer)
    client = await make_bot_on_database()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    listing = card_of(await _reply(client, fake, url, "subscriptions"))
    form = card_of(await _reply(client, fake, url, value=_action(listing, "Change quantity")["data"]))
    preview = _action(form, "Show the cost")["data"]
    confirm = {"verb": subscription_cards.CONFIRM_QUANTITY, "subscription_id": sid, "etag": "x", "key": "k"}
    with caplog.at_level(logging.INFO):
        for quantity in BAD_QUANTITIES:
            bad = await _reply(client, fake, url, value={**preview, "quantity": quantity})
            assert "whole number" in said(bad) and "New number of seats" in said(bad), quantity
            refused = await _reply(client, fake, url, value={**confirm, "quantity": quantity})
            assert "whole number" in said(refused), quantity
            preview = _action(card_of(refused), "Show the cost")["data"]
    assert _errors(caplog) == []
    good = await _reply(client, fake, url, value={**preview, "quantity": 12})
    assert "Charged now (pro rata)" in said(good)  # the task went on


async def test_malformed_pages_etags_and_keys_give_the_list_or_an_out_of_date_card(
    make_bot_on_database, connector, services, demo_customer, sandbox, caplog
):
    fake, url = connector
    await prepare_catalog_and_prices(services)
    sid = await buy(services, demo_customer)
    client = await make_bot_on_database()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    await _reply(client, fake, url, "subscriptions")
    with caplog.at_level(logging.INFO):
        for page in (float("inf"), 10**30, -3, "1e400", [1]):
            shown = await _reply(client, fake, url, value={"verb": subscription_cards.PAGE, "page": page})
            assert "Microsoft 365 Business Basic" in said(shown)
        for etag, key in (({"a": 1}, "k1"), ("e" * 201, "k2"), ("etag", ["k"]), ("etag", "k" * 151)):
            confirm = {"verb": subscription_cards.CONFIRM_CANCEL, "subscription_id": sid, "etag": etag, "key": key}
            refused = await _reply(client, fake, url, value=confirm)
            assert "out of date" in said(refused)
    assert _errors(caplog) == []
    customer = demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).status == "active"  # nothing changed


@pytest.mark.usefixtures("demo_customer")
async def test_out_of_range_directory_entry_ids_are_not_in_the_directory(
    make_bot_on_database, connector, services, caplog
):
    fake, url = connector
    await services.directory.load_csv("contoso", "email,first_name,last_name\nana@example.com,Ana,Silva\n", actor="op")
    client = await make_bot_on_database()
    await _reply(client, fake, url, "users")
    card = await _reply(client, fake, url, value={"verb": ui.USERS_DIRECTORY})
    submit = _submit(card_of(card), ui.USERS_IMPORT)
    with caplog.at_level(logging.INFO):
        for entries in ("99999999999999999999", "1,2147483648", "-1", "1.5"):
            refused = await _reply(client, fake, url, value={**submit, "entry_ids": entries})
            assert "not in your organisation's directory" in said(refused)
            submit = _submit(card_of(refused), ui.USERS_IMPORT)  # the card shown again, in place
    assert _errors(caplog) == []
    assert "1 not yet in the Microsoft tenant" in said(refused)  # nothing imported; the card is shown again


def _submit(card: dict[str, Any] | None, verb: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Submit" and (node.get("data") or {}).get("verb") == verb:
                found.append(dict(node["data"]))
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    assert found, f"no {verb} action on the card"
    return found[0]


# ---- the tenant form's agreement names ------------------------------------------------------------


@pytest.mark.usefixtures("services", "sandbox")
async def test_over_long_agreement_names_are_refused_on_the_card_and_the_tenant_is_created_after(
    make_bot_on_database, connector, caplog
):
    from tests.chat import Chat
    from tests.test_add_tenant_flow import action, error_under, submit

    fake, url = connector
    chat = Chat(await make_bot_on_database(), fake, url)
    start = await chat.card("add tenant")
    form = await chat.card(value=action(start, "Create a new tenant"))
    confirm = await chat.card(value=submit(form, "Check and continue", domain_prefix="contosolong"))
    with caplog.at_level(logging.INFO):
        long_names = {"mca_accept": "true", "mca_first_name": "A" * 65, "mca_last_name": "B" * 150}
        again = await chat.card(value=submit(confirm, "Create the tenant", **long_names))
        assert "at most 64 characters" in error_under(again, "mca_first_name")
        assert "at most 64 characters" in error_under(again, "mca_last_name")
        working, ready, _ = await chat.send(
            value=submit(again, "Create the tenant", mca_accept="true", mca_first_name="Alex", mca_last_name="Wilber"),
            replies=3,
        )
    assert "Working on it" in said(working) and "tenant is ready" in said(ready)
    assert _errors(caplog) == []


@pytest.mark.usefixtures("demo_customer")
async def test_control_characters_in_the_new_user_form_are_removed_and_the_user_created(
    make_bot_on_database, connector, services, caplog
):
    from services.models import TenantUser

    fake, url = connector
    client = await make_bot_on_database()
    form = card_of(await _reply(client, fake, url, "new user"))
    values = {
        "first_name": "Kim\x00",
        "last_name": "Lee\x1f",
        "display_name": "Kim\x00 Lee\ud800",
        "user_name": "kim.lee\x00",
        "domain": "contosodemo.onmicrosoft.com",
        "usage_location": "US",
        "password_email": "kim@example.com\x00",
    }
    with caplog.at_level(logging.INFO):
        created = await _reply(client, fake, url, value={**_submit(form, ui.USERS_CREATE), **values})
    assert "kim.lee@contosodemo.onmicrosoft.com" in said(created) and "e-mailed to kim@example.com" in said(created)
    async with services.sessions() as session:
        user = await session.scalar(select(TenantUser).where(TenantUser.user_principal_name.like("kim.lee@%")))
    assert user is not None and (user.first_name, user.last_name, user.display_name) == ("Kim", "Lee", "Kim Lee")
    assert _errors(caplog) == []


# ---- the payload parser itself ---------------------------------------------------------------------


def test_row_ids_accept_only_whole_numbers_within_the_database_range():
    from services.errors import NotFound
    from services.payloads import MAX_ROW_ID, row_id, row_ids

    assert row_id(7, "no") == 7 and row_id(" 42 ", "no") == 42 and row_id(str(MAX_ROW_ID), "no") == MAX_ROW_ID
    for bad in BAD_IDS + [MAX_ROW_ID + 1, "٣", "+0", "0x10"]:
        with pytest.raises(NotFound, match="^no$"):
            row_id(bad, "no")
    assert row_ids(["3", 1, "3"], "no") == [3, 1]


def test_counts_pages_and_tokens_are_bounded():
    from services.errors import InvalidInput
    from services.payloads import page_number, token, whole_number

    def count(value: Any) -> int:
        return whole_number(value, minimum=1, maximum=300, field="q", not_a_number="nan", out_of_range="range")

    assert count("12") == 12 and count(12.0) == 12 and count(" 300 ") == 300
    for bad, message in ((0, "range"), ("-2", "range"), (10**30, "range"), ("2.5", "nan"), (float("inf"), "nan"),
                         ("1e400", "nan"), ("²", "nan"), (True, "nan"), ("9" * 5000, "nan")):  # fmt: skip
        with pytest.raises(InvalidInput, match=message) as error:
            count(bad)
        assert error.value.field == "q"
    assert [page_number(value, 1) for value in (3, "4", float("inf"), 10**30, -1, None)] == [3, 4, 1, 1, 1, 1]
    assert token(" abc ", max_length=3, out_of_date="old") == "abc"
    assert token("", max_length=3, out_of_date="old", required=False) == ""
    for bad in ("", "abcd", None, 5, ["a"]):
        with pytest.raises(InvalidInput, match="old"):
            token(bad, max_length=3, out_of_date="old")
