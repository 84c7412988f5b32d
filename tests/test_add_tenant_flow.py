"""The tasks "add tenant" and "my services" through the real HTTP endpoint, the sandbox and the job runner:
a validation error kept on the card, a taken domain, Microsoft's suggested address, the MCA, the
"working on it" answer and the follow-up card, the credentials mail in the outbox (the password in
no chat message and no log line), a re-submitted card, linking an existing tenant, and roles."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from services.seed import DEMO_SLUG, seed_demo_organisation
from tests.chat import Chat
from tests.conftest import Sandbox, message, outbox_messages, runtime_of
from tests.fakes import card_of, card_text, said
from tests.mailparts import plain_text

GUID_TENANT = "6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"


def inputs(card: dict[str, Any]) -> dict[str, str]:
    """The values a person would submit unchanged: every input's current value."""
    return {
        element["id"]: str(element.get("value", ""))
        for element in card["body"]
        if str(element.get("type", "")).startswith("Input.")
    }


def action(card: dict[str, Any], title: str) -> dict[str, Any]:
    found = next(a for a in card.get("actions", []) if a["title"] == title)
    return dict(found["data"])


def submit(card: dict[str, Any], title: str, **changes: str) -> dict[str, Any]:
    return {**inputs(card), **action(card, title), **changes}


def error_under(card: dict[str, Any], input_id: str) -> str:
    body = card["body"]
    index = next(i for i, element in enumerate(body) if element.get("id") == input_id)
    following = body[index + 1]
    assert following.get("color") == "attention", f"no error under {input_id}"
    return str(following["text"])


async def _customers(sandbox: Sandbox, domain: str) -> int:
    async with sandbox.session.get(
        f"{sandbox.url}/v1/customers", params={"size": "100"}, headers={"Authorization": f"Bearer {sandbox.token}"}
    ) as response:
        body = await response.json()
    return sum(1 for item in body["items"] if item["companyProfile"]["domain"] == domain)


async def test_create_a_tenant_from_the_prefilled_form(make_bot, connector, sandbox, outbox, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiosqlite")  # as configure_logging keeps it
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)

    start = await chat.card("add tenant")
    assert "Link your existing tenant" in card_text(start) and "Create a new tenant" in card_text(start)
    assert any(a["type"] == "Action.OpenUrl" for a in start["actions"])

    form = await chat.card(value=action(start, "Create a new tenant"))
    values = inputs(form)
    assert values["company_name"] == "Contoso Ltd" and values["city"] == "Redmond" and values["state"] == "WA"
    assert values["domain_prefix"] == "contosodemo" and values["culture"] == "en-US" and values["language"] == "en"

    # A bad postal code: the error sits under the field, every entered value is kept, nothing is sent.
    form = await chat.card(value=submit(form, "Check and continue", postal_code="ABCDE", company_name="Contoso Two"))
    assert "not a postal code of United States" in error_under(form, "postal_code")
    assert inputs(form)["postal_code"] == "ABCDE" and inputs(form)["company_name"] == "Contoso Two"

    # Another country: its states to choose from (the old country's state goes), its phone numbers.
    form = await chat.card(value=submit(form, "Check and continue", country="CA", phone="020 7946 0000"))
    assert "required in Canada" in error_under(form, "state") and inputs(form)["state"] == ""
    assert "not a valid phone number for Canada" in error_under(form, "phone")
    assert inputs(form)["phone"] == "020 7946 0000" and inputs(form)["company_name"] == "Contoso Two"
    state_field = next(element for element in form["body"] if element.get("id") == "state")
    assert {"title": "Quebec (QC)", "value": "QC"} in state_field["choices"]
    form = await chat.card(value=submit(form, "Check and continue", country="US", state="WA", phone="425 555 0100"))

    # A taken domain: explained, with the relationship link and a free alternative, on the same card.
    form = await chat.card(value=submit(form, "Check and continue", postal_code="98052", domain_prefix="contoso"))
    text = card_text(form)
    assert "contoso.onmicrosoft.com already has a Microsoft tenant" in error_under(form, "domain_prefix")
    assert "global administrator" in text and "Link: http" in text and "is free" in text
    assert inputs(form)["company_name"] == "Contoso Two"

    # An abbreviated street: Microsoft suggests the full one, taken with one click.
    suggestion = await chat.card(
        value=submit(form, "Check and continue", domain_prefix="contosotwo", address_line1="1 Main St")
    )
    assert "Microsoft suggests" in card_text(suggestion) and "1 Main Street" in card_text(suggestion)
    confirm = await chat.card(value=action(suggestion, "Use the suggested address"))
    text = card_text(confirm)
    assert "contosotwo.onmicrosoft.com" in text and "1 Main Street" in text
    assert "No charges arise at this step" in text and "Microsoft Customer Agreement" in text

    # The agreement must be accepted.
    again = await chat.card(value=submit(confirm, "Create the tenant"))
    assert "requires the agreement to be accepted" in error_under(again, "mca_accept")
    assert await _customers(sandbox, "contosotwo.onmicrosoft.com") == 0

    create = submit(again, "Create the tenant", mca_accept="true")
    # The turn's answer, then the job's follow-up (a job quicker than the turn waits for it), then the
    # bot moves straight on to "add subscription": its first card follows by itself.
    working, ready, buying = await chat.send(value=create, replies=3)
    assert card_of(working) is None
    assert "Working on it" in said(working) and "contosotwo.onmicrosoft.com" in said(working)
    ready_card = card_of(ready)
    assert ready_card is not None and "Your Microsoft 365 tenant is ready" in card_text(ready_card)
    assert "e-mailed to a***@example.com" in card_text(ready_card)
    assert action(ready_card, "Add a subscription") == {"verb": "command", "command": "add subscription"}
    first_order_card = card_of(buying)
    assert first_order_card is not None and "category" in card_text(first_order_card).lower()

    # The same confirmation again (a double click or a re-delivered activity): no second tenant.
    await chat.send(value=create)
    assert await _customers(sandbox, "contosotwo.onmicrosoft.com") == 1
    await chat.send("cancel")  # leaves the ordering the bot started

    [mail] = outbox_messages(outbox)
    assert mail["To"] == "alexw@example.com"
    password = plain_text(mail).split("password:", 1)[1].split()[0]
    assert len(password) >= 8
    assert all(password not in str(item.activity) for item in fake.received)
    assert password not in caplog.text

    services = runtime_of(client).services
    org = await services.organisations.get(DEMO_SLUG)
    assert org.partner_center_customer_id is not None

    services_card = await chat.card("my services")
    text = card_text(services_card)
    assert "contosotwo.onmicrosoft.com" in text and org.partner_center_customer_id in text and "Created here" in text

    already = await chat.card("add tenant")
    assert "already has its Microsoft 365 tenant" in card_text(already)


async def test_stale_card_is_refused_and_the_current_one_shown(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)
    start = await chat.card("add tenant")
    form = await chat.card(value=action(start, "Create a new tenant"))
    # The first card's button, once the form took its place in the same message (a double click):
    # nothing happens and nothing is said.
    await chat.client.post(
        "/api/messages", json=message(None, service_url=url, value=action(start, "Create a new tenant"))
    )
    assert len(fake.messages()) == chat.seen
    # A copy of that button made without the card (no card id) is refused as out of date.
    unstamped = {key: item for key, item in action(start, "Create a new tenant").items() if key != "card_id"}
    again = await chat.card(value=unstamped)
    assert "out of date" in card_text(again) and inputs(again)["company_name"] == inputs(form)["company_name"]
    [cancelled] = await chat.send(value=action(again, "Cancel"))
    assert "Nothing was created" in said(cancelled)
    [record] = [item for item in fake.records() if "Cancelled" in card_text(card_of(item.activity))]
    assert "Company name" in card_text(card_of(record.activity))  # the form, read-only, kept as a record
    # Who and when, in the one date format: "Jan 5, 2027, 2:03 PM UTC".
    when = r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}\u202f[AP]M UTC"
    assert re.search(rf"✕ Cancelled — Alex Wilber, {when}$", card_text(card_of(record.activity)))


async def test_link_the_existing_tenant_once_the_admin_accepted(make_bot, connector, sandbox, sqlite_services) -> None:
    fake, url = connector
    await seed_demo_organisation(sqlite_services.organisations)
    await sqlite_services.organisations.link_teams_tenant(DEMO_SLUG, GUID_TENANT, actor="tests")
    client = await make_bot()
    chat = Chat(client, fake, url, tenant_id=GUID_TENANT)

    start = await chat.card("add tenant")
    not_yet = await chat.card(value=action(start, "I have accepted — check now"))
    assert "does not list your tenant" in card_text(not_yet)

    await sandbox.admin(
        "POST",
        "/relationships/accept",
        {"tenantId": GUID_TENANT, "companyName": "Contoso Ltd", "domain": "contosolinked.onmicrosoft.com"},
    )
    linked, services_card, mca = await chat.send(value=action(not_yet, "I have accepted — check now"), replies=3)
    assert "now linked" in said(linked)
    text = said(services_card)
    assert "contosolinked.onmicrosoft.com" in text and "Linked (existing tenant)" in text
    org = await sqlite_services.organisations.get(DEMO_SLUG)
    assert org.partner_center_customer_id == GUID_TENANT

    # Microsoft has no MCA acceptance for a linked tenant yet: asked for, prefilled, then recorded.
    mca_card = card_of(mca)
    assert mca_card is not None and "Accept the Microsoft Customer Agreement" in card_text(mca_card)
    assert inputs(mca_card)["mca_email"] == "alexw@example.com"
    recorded, shown = await chat.send(value=submit(mca_card, "Record the acceptance", mca_accept="true"), replies=2)
    assert "Recorded with Microsoft" in said(recorded) and "accepted by Alex Wilber" in said(shown)
    [agreement] = await sandbox.client.agreements(GUID_TENANT)
    assert agreement.primary_contact is not None and agreement.primary_contact.email == "alexw@example.com"


@pytest.mark.parametrize("command", ["add tenant", "link tenant"])
async def test_only_admins_may_add_a_tenant(make_bot, connector, command) -> None:
    fake, url = connector
    client = await make_bot()
    megan = Chat(
        client,
        fake,
        url,
        user_id="user-id-1",
        name="Megan Bowen",
        aad_object_id="00000000-0000-0000-0000-0000000000021",
        conversation_id="personal-chat-megan",
    )
    [reply] = await megan.send(command)
    assert "Your role does not allow **Add tenant**" in said(reply)
    services_card = await megan.card("my services")
    assert "no Microsoft 365 service" in card_text(services_card) and "An admin" in card_text(services_card)


async def test_an_address_microsoft_cannot_confirm_is_explained_without_a_suggestion(
    make_bot, connector, sandbox
) -> None:
    """No house number: Microsoft confirms only part of the address and suggests nothing. The card
    says so, offers no suggestion to take, and "Change details" brings back the form as entered."""
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)
    start = await chat.card("add tenant")
    form = await chat.card(value=action(start, "Create a new tenant"))
    check = await chat.card(
        value=submit(form, "Check and continue", address_line1="Main Street", domain_prefix="contosonew")
    )
    assert "could not confirm every part of the address" in card_text(check)
    titles = [a["title"] for a in check.get("actions", [])]
    assert "Use the suggested address" not in titles and "Keep my address" in titles
    form = await chat.card(value=action(check, "Change details"))
    assert inputs(form)["address_line1"] == "Main Street" and inputs(form)["domain_prefix"] == "contosonew"
    assert await _customers(sandbox, "contosonew.onmicrosoft.com") == 0
