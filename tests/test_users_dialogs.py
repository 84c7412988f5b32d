"""The users, new user and assign tasks through the real HTTP endpoint, the real services and the
sandbox: cards shown, bad input on the same card, exactly-once, private answers in channels."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from cards import users as ui
from services.models import Job
from services.users.leases import LeaseService
from services.users.service import SYNC_JOB
from tests.cardcheck import assert_valid_activity_cards
from tests.conftest import message, outbox_messages, runtime_of
from tests.fakes import card_of, card_text, said
from tests.test_conversation import _KeepingUp
from tests.users_support import BASIC, buy_licences

DOMAIN = "contosodemo.onmicrosoft.com"
THREAD = "team-id;messageid=1700000000009"


class Chat:
    def __init__(self, client, fake, url):
        self.client, self.fake, self.url, self.count = client, fake, url, 0

    async def say(self, text=None, *, value=None, expect=1, **kwargs):
        response = await self.client.post(
            "/api/messages", json=message(text, service_url=self.url, value=value, **kwargs)
        )
        assert response.status == 202
        self.count += expect
        await self.fake.wait_for(self.count)
        reply = self.fake.messages()[self.count - 1]
        assert_valid_activity_cards(reply)
        return reply


USERS_LISTING = "/v1/customers/*/users"


@pytest.fixture
async def periodic_sync_elsewhere(sqlite_services):
    """Another replica holds the periodic users sync: the bot's own start-up pass syncs nothing, so
    the copy is still never synced when the admin first opens the list."""
    assert await LeaseService(sqlite_services.sessions).acquire("users-sync:periodic", 900)


@pytest.mark.usefixtures("sqlite_demo_customer", "periodic_sync_elsewhere")
async def test_the_first_open_reads_the_tenant_from_microsoft_before_answering(make_bot, connector, sandbox):
    """Never synced: the admin sees their tenant's users in the first answer, "typing…" meanwhile."""
    fake, url = connector
    client = await make_bot(loop_lag=_KeepingUp(), settings={"typing_indicator_delay_seconds": 0.05})
    chat = Chat(client, fake, url)
    await sandbox.admin("POST", "/faults", {"kind": "latency", "latencyMs": 300, "path": USERS_LISTING})
    text = said(await chat.say("users"))
    assert f"admin@{DOMAIN}" in text and "Synced with Microsoft just now" in text and "1 user" in text
    assert [item.activity["type"] for item in fake.received] == ["typing", "message"]
    async with runtime_of(client).services.sessions() as session:  # done then, not left to a background job
        assert await session.scalar(select(func.count()).select_from(Job).where(Job.kind == SYNC_JOB)) == 0


@pytest.mark.usefixtures("sqlite_demo_customer", "periodic_sync_elsewhere")
async def test_a_failed_first_sync_is_explained_and_the_list_still_opens(make_bot, connector, sandbox):
    chat, _ = await _chat(make_bot, connector)
    await sandbox.admin("POST", "/faults", {"kind": "error", "status": 503, "path": USERS_LISTING, "repeat": 50})
    reply = await chat.say("users")
    text = said(reply)
    assert "Users of your Microsoft tenant" in text and "No users read yet." in text
    assert "Could not read your users from Microsoft: Microsoft's service is not responding" in text
    assert "Use Refresh to try again" in text
    assert action_data(reply, ui.USERS_NEW)  # the list works: its buttons are there
    await sandbox.admin("DELETE", "/faults")
    again = said(await chat.say(value=action_data(reply, ui.USERS_REFRESH)))
    assert f"admin@{DOMAIN}" in again and "Could not read" not in again


def action_data(reply, verb):
    """The data of the card's submit with that verb (top level, show-cards and action sets)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "Action.Submit" and node.get("data", {}).get("verb") == verb:
                found.append(node["data"])
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card_of(reply))
    assert found, f"no {verb} action on the card"
    return dict(found[0])


async def _chat(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    return Chat(client, fake, url), runtime_of(client).services


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_users_list_shows_the_admin_with_freshness_and_opens_a_user(make_bot, connector):
    chat, services = await _chat(make_bot, connector)
    first = said(await chat.say("users"))
    assert "Users of your Microsoft tenant" in first and "Synced with Microsoft just now" in first
    reply = await chat.say(value={"verb": ui.USERS_REFRESH, "page": 1, "search_was": ""})
    text = said(reply)
    assert f"admin@{DOMAIN}" in text and "Refreshed from Microsoft" in text and "0 licences" in text
    user_id = action_data(reply, ui.USERS_OPEN)["user_id"]
    detail = said(await chat.say(value={"verb": ui.USERS_OPEN, "user_id": user_id}))
    assert "Usage location" in detail and "This user has no licences" in detail
    found = said(await chat.say(value={"verb": ui.USERS_SEARCH, "search": "nobody-like-this"}))
    assert "0 users match" in found
    assert "Done with users" in said(await chat.say(value={"verb": ui.USERS_DONE}))


async def test_new_user_form_keeps_values_on_bad_input_creates_once_and_mails_the_password(
    make_bot, connector, sqlite_demo_customer, outbox
):
    chat, services = await _chat(make_bot, connector)
    form = await chat.say("new user")
    text = said(form)
    assert "New user" in text and "never shown here" in text
    submit = action_data(form, ui.USERS_CREATE)
    values = {
        "first_name": "Kim",
        "last_name": "Lee",
        "display_name": "Kim Lee",
        "user_name": "kim.lee",
        "domain": "fabrikam.com",  # not the tenant's
        "usage_location": "US",
        "password_email": "kim@example.com",
    }
    again = await chat.say(value={**submit, **values})
    assert "is not one of your tenant's domains" in said(again)
    assert any(b.get("value") == "kim.lee" for b in _inputs(card_of(again)))  # entered values kept
    submit = action_data(again, ui.USERS_CREATE)
    values["domain"] = DOMAIN
    created = await chat.say(value={**submit, **values})
    assert f"kim.lee@{DOMAIN}" in said(created) and "e-mailed to kim@example.com" in said(created)
    twice = await chat.say(value={**submit, **values})  # the same card submitted again
    assert "already done from this card" in said(twice) and "nothing more was done" in said(twice)
    unstamped = {key: item for key, item in submit.items() if key != "card_id"}  # a copy made without the card
    assert "already created" in said(await chat.say(value={**unstamped, **values}))
    (mail,) = outbox_messages(outbox)
    password = mail.get_content().split("Temporary password: ")[1].split()[0]
    assert all(password not in str(item.activity) for item in chat.fake.received)
    customer = sqlite_demo_customer.partner_center_customer_id
    upns = [u.user_principal_name async for u in services.partner_center.users(customer)]
    assert upns.count(f"kim.lee@{DOMAIN}") == 1


def _inputs(card):
    found = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("type", "")).startswith("Input."):
                found.append(node)
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return found


async def test_assign_and_unassign_with_counts_on_the_cards(make_bot, connector, sqlite_demo_customer, sandbox):
    chat, services = await _chat(make_bot, connector)
    await buy_licences(services, sqlite_demo_customer, BASIC, 1)
    customer = sqlite_demo_customer.partner_center_customer_id
    users = f"/customers/{customer}/users"
    kim = await sandbox.admin(
        "POST", users, {"userPrincipalName": f"kim@{DOMAIN}", "displayName": "Kim", "usageLocation": "US"}
    )
    sam = await sandbox.admin(
        "POST", users, {"userPrincipalName": f"sam@{DOMAIN}", "displayName": "Sam", "usageLocation": "US"}
    )
    await services.user_sync.sync_now(sqlite_demo_customer.id)

    card = await chat.say("assign")
    text = said(card)
    assert "1 available of 1 (0 assigned)" in text and "comes from" in text
    submit = action_data(card, ui.USERS_ASSIGN_DO)
    choice = next(i for i in _inputs(card_of(card)) if i["id"] == "licence")["value"]
    too_many = await chat.say(value={**submit, "user_ids": f"{kim['id']},{sam['id']}", "licence": choice})
    assert "only 1 of 1 are available" in said(too_many)
    submit = action_data(too_many, ui.USERS_ASSIGN_DO)
    done = await chat.say(value={**submit, "user_ids": kim["id"], "licence": choice})
    assert "✔ Kim: assigned" in said(done) and "Available" in said(done)
    listing = said(await chat.say(value={"verb": ui.USERS_LIST}))
    assert "1 licence" in listing
    user = await chat.say(value={"verb": ui.USERS_OPEN, "user_id": kim["id"]})
    assert "Microsoft 365 Business Basic" in said(user)
    remove = action_data(user, ui.USERS_UNASSIGN)
    removed = await chat.say(value={**remove, "licences": choice})
    assert "Licences removed" in said(removed) and "1 available, 0 assigned of 1" in said(removed)


async def test_forged_user_id_on_a_card_changes_nothing(make_bot, connector, sqlite_demo_customer):
    chat, services = await _chat(make_bot, connector)
    await buy_licences(services, sqlite_demo_customer, BASIC, 1)
    card = await chat.say("assign")
    submit = action_data(card, ui.USERS_ASSIGN_DO)
    choice = next(i for i in _inputs(card_of(card)) if i["id"] == "licence")["value"]
    reply = await chat.say(value={**submit, "user_ids": "someone-elses-user", "licence": choice})
    assert "not in your organisation's tenant" in said(reply)


async def test_in_a_channel_the_users_list_goes_to_the_personal_chat(make_bot, connector, sqlite_demo_customer):
    chat, services = await _chat(make_bot, connector)
    await services.user_sync.sync_now(sqlite_demo_customer.id)
    await chat.say("menu")  # the 1:1 chat exists
    await chat.say("users", conversation_id=THREAD, conversation_type="channel", mention_bot=True, expect=2)
    sent = [(item.conversation_id, item.activity) for item in chat.fake.received if item.activity["type"] == "message"]
    private = [a for c, a in sent if c == "personal-chat-alex" and card_of(a)]
    assert any(f"admin@{DOMAIN}" in card_text(card_of(a)) for a in private)
    assert all(f"admin@{DOMAIN}" not in str(a) for c, a in sent if c == THREAD)


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_users_need_the_admin_role(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    megan = {"user_id": "user-id-1", "name": "Megan", "aad_object_id": "00000000-0000-0000-0000-0000000000021"}
    await client.post("/api/messages", json=message("users", service_url=url, **megan))
    await fake.wait_for(1)
    reply = fake.messages()[0]
    assert "does not allow" in said(reply)


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_new_user_asked_in_a_channel_continues_in_the_personal_chat(make_bot, connector):
    chat, _ = await _chat(make_bot, connector)
    await chat.say("menu")
    await chat.say("new user", conversation_id=THREAD, conversation_type="channel", mention_bot=True, expect=2)
    private = [
        item.activity
        for item in chat.fake.received
        if item.conversation_id == "personal-chat-alex" and card_of(item.activity)
    ]
    assert "Start “New user” here" in card_text(card_of(private[-1]))
    started = await chat.say(value={"verb": "command", "command": "new user"})
    assert "New user" in said(started) and action_data(started, ui.USERS_CREATE)


async def test_directory_import_and_export_through_the_card(make_bot, connector, sqlite_demo_customer, outbox):
    chat, services = await _chat(make_bot, connector)
    await services.directory.load_csv("contoso", "email,first_name,last_name\nana@example.com,Ana,Silva\n", actor="op")
    await services.user_sync.sync_now(sqlite_demo_customer.id)
    await chat.say("users")
    card = await chat.say(value={"verb": ui.USERS_DIRECTORY})
    assert "1 not yet in the Microsoft tenant" in said(card)
    entry = next(i for i in _inputs(card_of(card)) if i["id"] == "entry_ids")["choices"][0]["value"]
    assert any(i["id"] == "import_send_to" for i in _inputs(card_of(card)))  # "the address entered"
    imported = await chat.say(value={**action_data(card, ui.USERS_IMPORT), "entry_ids": entry})
    assert f"created as ana@{DOMAIN}" in said(imported) and "password sent to ana@example.com" in said(imported)
    card = await chat.say(value={"verb": ui.USERS_DIRECTORY})
    admin = next(
        c["value"]
        for c in next(i for i in _inputs(card_of(card)) if i["id"] == "user_ids")["choices"]
        if "admin@" in c["title"]
    )
    bad = await chat.say(value={**action_data(card, ui.USERS_EXPORT), "user_ids": admin, "send_to": "not-mail"})
    assert "valid e-mail address" in said(bad)
    kept = {i["id"]: i.get("value") for i in _inputs(card_of(bad))}
    assert kept["send_to"] == "not-mail" and kept["user_ids"] == admin  # what was entered is kept
    exported = await chat.say(
        value={**action_data(bad, ui.USERS_EXPORT), "user_ids": admin, "send_to": "it@example.com"}
    )
    assert "password sent to it@example.com" in said(exported)
    mails = outbox_messages(outbox)
    assert [m["To"] for m in mails] == ["ana@example.com", "it@example.com"]
    secrets = [m.get_content().split("password: ")[1].split()[0] for m in mails]
    assert all(secret not in str(item.activity) for secret in secrets for item in chat.fake.received)
