"""Warning cards over the real HTTP endpoint: the pass posts them into the admins' 1:1 chats; their
`adaptiveCard/action` buttons act through the subscriptions services and re-check at click time —
Remove N seats (the change-quantity preview, then confirm), Keep as is, Renew with N seats, Turn
auto-renew off, Unassign with confirmation — and a card whose moment has passed says why, without a
button. Every card is checked against the Adaptive Card schema."""

from __future__ import annotations

import asyncio
import io
import zipfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.container import Services
from services.errors import NotFound
from services.seed import DEMO_SLUG, PLAYGROUND_APPROVER
from services.warnings.rules import Kind
from tests.cardcheck import assert_valid_card
from tests.chat import inputs, walk
from tests.conftest import SANDBOX_START, Sandbox, message, runtime_of
from tests.fakes import FakeConnector, card_of, card_text
from tests.subscription_fixtures import BASIC_LICENCE, buy, caller, prepare_catalog_and_prices

ALEX_CHAT = "personal-chat-alex"
MEGAN = {
    "user_id": "user-id-1",
    "name": "Megan Bowen",
    "aad_object_id": "00000000-0000-0000-0000-0000000000021",
    "conversation_id": "personal-chat-megan",
}
ANNUAL_RENEWAL = datetime(2027, 11, 16, tzinfo=UTC)
CHANNEL = "19:general@thread.tacv2"


async def _start(make_bot, connector, sqlite_services: Services, sqlite_demo_customer, **buying: Any):
    fake, url = connector
    await prepare_catalog_and_prices(sqlite_services)
    sid = await buy(sqlite_services, sqlite_demo_customer, **buying)
    client = await make_bot(run_jobs=False)  # the test runs the passes itself
    services = runtime_of(client).services
    await _say(client, fake, url, "menu")  # Alex's 1:1 chat is known from now on
    return client, services, sid


async def _say(client, fake: FakeConnector, url: str, text: str, **who: Any) -> None:
    conversation = who.get("conversation_id", ALEX_CHAT)
    before = len(fake.messages(conversation))
    response = await client.post("/api/messages", json=message(text, service_url=url, **who))
    assert response.status == 202
    await fake.wait_for(before + 1, conversation)


async def _invoke(client, url: str, verb: str, data: dict[str, Any], **who: Any) -> dict[str, Any]:
    activity = message(None, service_url=url, **who)
    activity.update(type="invoke", name="adaptiveCard/action")
    activity["value"] = {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}
    response = await client.post("/api/messages", json=activity)
    assert response.status == 200
    body = await response.json()
    if body.get("type") == "application/vnd.microsoft.card.adaptive":
        assert_valid_card(body["value"])
    return dict(body)


def _buttons(card: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The card's Action.Execute buttons by title (its automatic refresh left aside)."""
    actions = walk({key: value for key, value in card.items() if key != "refresh"})
    return {str(n["title"]): n for n in actions if n.get("type") == "Action.Execute"}


async def _pass_posts(services: Services, fake: FakeConnector, conversation: str = ALEX_CHAT) -> dict[str, Any]:
    before = len(fake.messages(conversation))
    await services.warnings.run_pass()
    messages = fake.messages(conversation)
    assert len(messages) == before + 1, [card_text(card_of(m) or {}) for m in messages[before:]]
    card = card_of(messages[-1])
    assert card is not None
    assert_valid_card(card)
    return card


async def _assign_users(sandbox: Sandbox, customer: str, names: list[str]) -> list[str]:
    ids = []
    for name in names:
        user = await sandbox.admin(
            "POST",
            f"/customers/{customer}/users",
            {"userPrincipalName": f"{name}@contosodemo.onmicrosoft.com", "displayName": name, "usageLocation": "US"},
        )
        await sandbox.admin("POST", f"/customers/{customer}/users/{user['id']}/licenses", {"assign": [BASIC_LICENCE]})
        ids.append(str(user["id"]))
    return ids


async def test_the_seat_window_card_removes_the_unassigned_seats_after_its_preview(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10)
    await _assign_users(sandbox, customer, ["kim", "lee"])
    # Megan is made an admin too and has a chat: she gets her own copy.
    await services.organisations.set_roles(DEMO_SLUG, PLAYGROUND_APPROVER[0], add=["admin"], actor="op")
    await _say(client, fake, url, "menu", **MEGAN)
    await sandbox.admin("POST", "/clock", {"advance": "P6D"})
    card = await _pass_posts(services, fake)
    closes = "Nov 23, 2026"
    assert "8 seats" in card_text(card) and closes in card_text(card)
    assert set(_buttons(card)) == {"Remove 8 seats", "Keep as is"}
    assert len(fake.messages("personal-chat-megan")) == 2  # her menu, and her copy
    remove = _buttons(card)["Remove 8 seats"]
    preview = await _invoke(client, url, remove["verb"], remove["data"])
    shown = card_text(preview["value"])
    assert "Remove 8 seats of Microsoft 365 Business Basic?" in shown and "10 → 2" in shown
    assert "Refunded now (pro rata)" in shown
    confirm = _buttons(preview["value"])["Remove 8 seats"]
    done = await _invoke(client, url, confirm["verb"], confirm["data"])
    assert "✓ Microsoft 365 Business Basic now has 2 seats (was 10) — Alex Wilber" in card_text(done["value"])
    assert _buttons(done["value"]) == {}
    assert (await services.partner_center.subscription(customer, sid)).quantity == 2
    megans = [r for r in fake.received if r.method == "PUT" and r.conversation_id == "personal-chat-megan"]
    assert megans and "✓ Microsoft 365 Business Basic now has 2 seats" in card_text(card_of(megans[-1].activity) or {})
    # A second click (a double click, or Megan's old copy) changes nothing more.
    again = await _invoke(client, url, confirm["verb"], confirm["data"], **MEGAN)
    assert "now has 2 seats" in card_text(again["value"]) and _buttons(again["value"]) == {}
    assert (await services.partner_center.subscription(customer, sid)).quantity == 2


async def test_a_window_that_closed_while_the_card_was_open_is_explained_without_a_button(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10)
    await sandbox.admin("POST", "/clock", {"advance": "P6D"})
    card = await _pass_posts(services, fake)
    remove = _buttons(card)["Remove 9 seats"]
    await sandbox.admin("POST", "/clock", {"set": (SANDBOX_START + timedelta(days=7, minutes=1)).isoformat()})
    answer = await _invoke(client, url, remove["verb"], remove["data"])
    assert "Too late" in card_text(answer["value"]) and _buttons(answer["value"]) == {}
    refreshed = await _invoke(client, url, "warn_refresh", remove["data"])
    assert "Too late" in card_text(refreshed["value"]) and _buttons(refreshed["value"]) == {}
    customer = sqlite_demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).quantity == 10


async def test_the_renewal_card_schedules_fewer_seats_and_is_locked_in_the_last_day(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid = await _start(
        make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10, term="P1Y", cycle="annual"
    )
    await _assign_users(sandbox, customer, ["kim", "lee", "max"])
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(days=30)).isoformat()})
    card = await _pass_posts(services, fake)
    shown = card_text(card)
    assert "renews on Nov 15, 2027" in shown and "$720.00 for 10 seats" in shown  # the term's last day
    assert set(_buttons(card)) == {"Keep as is", "Renew with 3 seats", "Switch term/billing", "Turn auto-renew off"}
    renew = _buttons(card)["Renew with 3 seats"]
    done = await _invoke(client, url, renew["verb"], renew["data"])
    assert "will renew with 3 seats" in card_text(done["value"]) and _buttons(done["value"]) == {}
    current = await services.partner_center.subscription(customer, sid)
    assert current.scheduled_next_term_instructions is not None
    assert current.scheduled_next_term_instructions.quantity == 3 and current.quantity == 10
    # The 7-day warning shows the schedule; inside the lock its buttons explain and do nothing.
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(days=7)).isoformat()})
    card = await _pass_posts(services, fake)
    assert "Scheduled for the renewal" in card_text(card) and "$216.00 for 3 seats" in card_text(card)
    off = _buttons(card)["Turn auto-renew off"]
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(hours=12)).isoformat()})
    answer = await _invoke(client, url, off["verb"], off["data"])
    assert "Too late: Microsoft locks" in card_text(answer["value"]) and _buttons(answer["value"]) == {}
    assert (await services.partner_center.subscription(customer, sid)).auto_renew_enabled is True


async def _term_options(
    make_bot, connector, services: Services, org, sandbox: Sandbox, *, seats: int, days_before: int
):
    """An annual subscription's renewal card `days_before` its renewal, and its Switch term/billing answer."""
    fake, url = connector
    client, services, sid = await _start(make_bot, connector, services, org, quantity=seats, term="P1Y", cycle="annual")
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(days=days_before)).isoformat()})
    switch = _buttons(await _pass_posts(services, fake))["Switch term/billing"]
    return client, services, sid, switch, await _invoke(client, url, switch["verb"], switch["data"])


async def test_switch_term_billing_compares_the_options_and_schedules_one_for_the_renewal(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid, _, compared = await _term_options(
        make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, seats=10, days_before=30
    )
    shown = card_text(compared["value"])
    # Side by side at the reseller's prices for the 10 seats: 72.00/year, 6.00/month on P1Y, 7.20 on P1M.
    assert "1 year term, billed yearly (now)" in shown and "$720.00 per year" in shown
    assert "1 year term, billed monthly" in shown and "$60.00 per month" in shown
    assert "1 month term, billed monthly" in shown and "$72.00 per month" in shown and "$864.00 per year" in shown
    buttons = _buttons(compared["value"])
    assert set(buttons) == {"Renew: 1 year term, billed monthly", "Renew: 1 month term, billed monthly", "Back"}
    # An option not offered (no reseller price for P3Y) is refused, and nothing is scheduled.
    bad = {**buttons["Renew: 1 year term, billed monthly"]["data"], "term_duration": "P3Y"}
    refused = await _invoke(client, url, "warn_switch_term_confirm", bad)
    assert "not offered" in card_text(refused["value"])
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is None
    monthly = buttons["Renew: 1 year term, billed monthly"]
    done = await _invoke(client, url, monthly["verb"], monthly["data"])
    assert "will renew on Nov 15, 2027 for 1 year, billed monthly (10 seats)" in card_text(done["value"])
    assert _buttons(done["value"]) == {}
    scheduled = (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions
    assert scheduled is not None and scheduled.product is not None and scheduled.quantity == 10
    assert (scheduled.product.term_duration, scheduled.product.billing_cycle) == ("P1Y", "monthly")
    # `renewals` rates the renewal with the scheduled billing: 10 seats × $6.00 a month.
    alex = await caller(services)
    [ahead] = (await services.warnings.renewals(alex)).items
    assert (ahead.billing_cycle, ahead.term_scheduled, ahead.cost_per_period) == ("monthly", True, Decimal("60.00"))
    # Fewer seats scheduled afterwards keep the new billing frequency.
    plan = await services.subscription_changes.plan_quantity(alex, sid, 6)
    await services.subscription_changes.schedule_quantity(alex, sid, 6, etag=plan.etag, key="after-term")
    scheduled = (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions
    assert scheduled is not None and scheduled.product is not None
    assert (scheduled.quantity, scheduled.product.billing_cycle) == (6, "monthly")
    # The 7-day warning shows the schedule and rates the renewal with it: 6 seats × $6.00 a month.
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(days=7)).isoformat()})
    shown = card_text(await _pass_posts(services, fake))
    assert "1 year, billed monthly (as scheduled)" in shown and "$36.00 for 6 seats" in shown
    # Microsoft renews into it.
    await sandbox.admin("POST", "/clock", {"set": ANNUAL_RENEWAL.isoformat()})
    renewed = await services.partner_center.subscription(customer, sid)
    assert (renewed.quantity, renewed.term_duration, renewed.billing_cycle) == (6, "P1Y", "monthly")


async def test_switch_term_billing_inside_the_lock_explains_and_schedules_nothing(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid, switch, compared = await _term_options(
        make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, seats=4, days_before=7
    )
    monthly = _buttons(compared["value"])["Renew: 1 month term, billed monthly"]
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(hours=12)).isoformat()})
    for verb, data in ((monthly["verb"], monthly["data"]), (switch["verb"], switch["data"])):
        answer = await _invoke(client, url, verb, data)
        assert "Too late: Microsoft locks" in card_text(answer["value"]) and _buttons(answer["value"]) == {}
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is None


async def test_turn_auto_renew_off_from_the_renewal_card(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _start(
        make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=4, term="P1Y", cycle="annual"
    )
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(days=7)).isoformat()})
    card = await _pass_posts(services, fake)
    off = _buttons(card)["Turn auto-renew off"]
    done = await _invoke(client, url, off["verb"], off["data"])
    assert "Auto-renew is off" in card_text(done["value"])
    customer = sqlite_demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).auto_renew_enabled is False


async def test_idle_users_are_unassigned_one_by_one_after_confirming(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=3)
    kim, lee = await _assign_users(sandbox, customer, ["kim", "lee"])
    await sandbox.admin("POST", "/clock", {"advance": "P40D"})
    await sandbox.admin("POST", f"/customers/{customer}/users/{lee}/signins", {})
    await services.user_sync.sync(sqlite_demo_customer.id)
    await services.warnings.run_pass()  # notes the unassigned seat; Kim has not signed in for 40 days
    card = card_of(fake.messages(ALEX_CHAT)[-1])
    assert card is not None
    assert_valid_card(card)
    assert "Idle licences: Microsoft 365 Business Basic" in card_text(card) and "kim (kim@" in card_text(card)
    unassign = _buttons(card)["Unassign"]
    assert unassign["data"]["user_id"] == kim
    confirm_card = await _invoke(client, url, unassign["verb"], unassign["data"])
    assert "Remove Microsoft 365 Business Basic from kim?" in card_text(confirm_card["value"])
    held = await services.partner_center.user_licenses(customer, kim)
    assert [licence.product_sku.id for licence in held] == [BASIC_LICENCE]  # nothing before confirming
    confirm = _buttons(confirm_card["value"])["Unassign"]
    done = await _invoke(client, url, confirm["verb"], confirm["data"])
    assert "✓ licence removed" in card_text(done["value"])
    assert await services.partner_center.user_licenses(customer, kim) == []
    assert [licence.product_sku.id for licence in await services.partner_center.user_licenses(customer, lee)] == [
        BASIC_LICENCE
    ]


async def test_a_member_who_is_no_admin_cannot_act_on_a_warning(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10)
    await sandbox.admin("POST", "/clock", {"advance": "P6D"})
    card = await _pass_posts(services, fake)
    remove = _buttons(card)["Remove 9 seats"]
    answer = await _invoke(client, url, remove["verb"], remove["data"], **MEGAN)  # an approver
    assert "Only an admin" in str(answer["value"])
    forged = await _invoke(client, url, remove["verb"], {"notice_id": 999})
    assert "not one of your organisation's" in str(forged["value"])
    await services.organisations.set_roles(DEMO_SLUG, "alexw@example.com", remove=["admin"], actor="op")
    answer = await _invoke(client, url, remove["verb"], remove["data"])
    assert "Only an admin" in str(answer["value"])
    customer = sqlite_demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).quantity == 10


@pytest.mark.usefixtures("sqlite_services")
async def test_admins_change_their_warning_settings_in_chat_and_bad_values_save_nothing(
    make_bot, connector, sqlite_demo_customer
):
    fake, url = connector
    client = await make_bot(run_jobs=False)
    services = runtime_of(client).services
    await _say(client, fake, url, "warning settings")
    form = card_of(fake.messages(ALEX_CHAT)[-1])
    assert form is not None
    assert_valid_card(form)
    values = inputs(form)
    assert values["leads"] == "30,7" and values["on_idle_licences"] == "true" and values["quiet"] == "off"
    bad = {**values, "verb": "warnings_settings_save", "leads": "30,soon", "idle_days": "60"}
    response = await client.post("/api/messages", json=message(None, service_url=url, value=bad))
    assert response.status == 202
    await fake.wait_for(2, ALEX_CHAT)
    again = card_of(fake.messages(ALEX_CHAT)[-1])
    assert again is not None
    assert "Nothing was saved" in card_text(again) and inputs(again)["leads"] == "30,soon"
    assert (await services.warnings.settings.get(sqlite_demo_customer.id)).idle_days == 30
    good = {**values, "verb": "warnings_settings_save", "leads": "14", "on_idle_licences": "false", "quiet": "21-7"}
    response = await client.post("/api/messages", json=message(None, service_url=url, value=good))
    assert response.status == 202
    await fake.wait_for(3, ALEX_CHAT)
    saved = await services.warnings.settings.get(sqlite_demo_customer.id)
    assert saved.renewal_lead_days == (14,) and saved.quiet_start == 21 and Kind.IDLE not in saved.enabled
    # An approver may not open them.
    await _say(client, fake, url, "warning settings", **MEGAN)
    assert "does not allow" in str(fake.messages("personal-chat-megan")[-1].get("text", ""))


async def test_renewing_with_fewer_seats_than_are_assigned_now_is_refused_and_changes_nothing(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid = await _start(
        make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10, term="P1Y", cycle="annual"
    )
    await _assign_users(sandbox, customer, ["kim", "lee", "max"])
    await sandbox.admin("POST", "/clock", {"set": (ANNUAL_RENEWAL - timedelta(days=30)).isoformat()})
    card = await _pass_posts(services, fake)
    renew = _buttons(card)["Renew with 3 seats"]
    await _assign_users(sandbox, customer, ["ann", "bo"])  # two more people got a licence since
    answer = await _invoke(client, url, renew["verb"], renew["data"])
    shown = card_text(answer["value"])
    assert "5 licences of Microsoft 365 Business Basic are assigned" in shown
    assert "Renew with 3 seats" in _buttons(answer["value"])  # still possible with another number
    assert (await services.partner_center.subscription(customer, sid)).scheduled_next_term_instructions is None


async def test_a_warning_nobody_could_receive_reaches_the_admin_who_first_says_hi(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    await prepare_catalog_and_prices(sqlite_services)
    await buy(sqlite_services, sqlite_demo_customer, quantity=10)
    client = await make_bot(run_jobs=False)
    services = runtime_of(client).services
    await sandbox.admin("POST", "/clock", {"advance": "P6D"})
    result = await services.warnings.run_pass()
    assert (result.due, result.sent, result.waiting) == (1, 0, 1)  # no admin has chatted with the bot yet
    await _say(client, fake, url, "menu")
    await fake.wait_for(2, ALEX_CHAT)  # the menu, then the warning that waited for them
    card = card_of(fake.messages(ALEX_CHAT)[-1])
    assert card is not None
    assert_valid_card(card)
    assert "Seats you can still return" in card_text(card)
    await services.warnings.run_pass()
    await _say(client, fake, url, "menu")
    assert len(fake.messages(ALEX_CHAT)) == 3  # told once: not again by the next pass or the next hello


async def test_warnings_are_also_posted_in_the_organisation_channel_where_only_admins_can_act(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10)
    in_channel = {"conversation_id": CHANNEL, "conversation_type": "channel", "mention_bot": True}
    await _say(client, fake, url, "menu", **in_channel)  # the bot now knows the channel
    org = await services.organisations.get(DEMO_SLUG)
    settings = services.warnings.settings
    with pytest.raises(NotFound):  # a conversation the bot does not know is refused, nothing is set
        await settings.set_channel(org.id, "19:unknown@thread.tacv2", actor="op")
    assert await settings.channel(org.id) is None
    await settings.set_channel(org.id, CHANNEL, actor="op")
    await sandbox.admin("POST", "/clock", {"advance": "P6D"})
    before = len(fake.messages(CHANNEL))
    await _pass_posts(services, fake)  # Alex's 1:1 copy
    copies = fake.messages(CHANNEL)[before:]
    assert len(copies) == 1
    card = card_of(copies[0])
    assert card is not None and "Remove 9 seats" in _buttons(card)
    assert_valid_card(card)
    remove = _buttons(card)["Remove 9 seats"]
    # Megan (an approver, no admin) clicks in the channel: refused, nothing changes.
    answer = await _invoke(client, url, remove["verb"], remove["data"], **{**MEGAN, **in_channel})
    assert "Only an admin" in str(answer["value"])
    customer = sqlite_demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).quantity == 10
    # Alex (an admin) acts from the channel copy; the copies in his chat and the channel show it.
    preview = await _invoke(client, url, remove["verb"], remove["data"], **in_channel)
    confirm = _buttons(preview["value"])["Remove 9 seats"]
    done = await _invoke(client, url, confirm["verb"], confirm["data"], **in_channel)
    assert "now has 1 seat" in card_text(done["value"])
    assert (await services.partner_center.subscription(customer, sid)).quantity == 1
    updated = [r for r in fake.received if r.method == "PUT" and r.conversation_id == CHANNEL]
    assert updated and "now has 1 seat" in card_text(card_of(updated[-1].activity) or {})
    # Another pass posts nothing more there.
    posted = [r for r in fake.received if r.method == "POST" and r.conversation_id == CHANNEL]
    await services.warnings.run_pass()
    assert [r for r in fake.received if r.method == "POST" and r.conversation_id == CHANNEL] == posted


async def _new_cards(fake: FakeConnector, conversation: str, before: int) -> list[dict[str, Any]]:
    found = [card_of(m) for m in fake.messages(conversation)[before:]]
    return [c for c in found if c is not None]


async def test_the_monthly_licence_overview_reaches_admins_and_billing_readers_once_a_month_with_its_xlsx(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    customer = sqlite_demo_customer.partner_center_customer_id
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10)
    await _assign_users(sandbox, customer, ["kim", "lee"])
    await _say(client, fake, url, "menu", **MEGAN)  # Megan: an approver only, no billing reader
    alex, megan = len(fake.messages(ALEX_CHAT)), len(fake.messages(MEGAN["conversation_id"]))
    await sandbox.admin("POST", "/clock", {"set": "2026-11-30T12:00:00+00:00"})  # the cycle has not ended
    await services.warnings.run_pass()
    assert not [c for c in await _new_cards(fake, ALEX_CHAT, alex) if "Licence overview" in card_text(c)]
    # The reseller's billing day (the calendar month's cycle ended): Alex (admin) gets November's overview.
    await sandbox.admin("POST", "/clock", {"set": "2026-12-01T09:00:00+00:00"})
    await services.warnings.run_pass()
    [overview] = [c for c in await _new_cards(fake, ALEX_CHAT, alex) if "Licence overview" in card_text(c)]
    assert_valid_card(overview)
    shown = card_text(overview)
    assert "Licence overview — November 2026" in shown and "Microsoft 365 Business Basic" in shown
    assert "8 (8 unassigned, 0 not signed in)" in shown and "$60.00" in shown  # 10 seats × $6.00 a month
    assert "(+" not in shown  # the first overview has no changes to show
    assert await _new_cards(fake, MEGAN["conversation_id"], megan) == []
    # Exactly once: another pass that day sends nothing more.
    alex = len(fake.messages(ALEX_CHAT))
    await services.warnings.run_pass()
    assert not [c for c in await _new_cards(fake, ALEX_CHAT, alex) if "Licence overview" in card_text(c)]
    # Download as Excel: a single-use link (billing's export links), for billing readers only.
    download = _buttons(overview)["Download as Excel"]
    refused = await _invoke(client, url, download["verb"], download["data"], **MEGAN)
    assert "billing" in str(refused["value"]) and "/exports/" not in str(refused["value"]), refused
    linked = await _invoke(client, url, download["verb"], download["data"])
    link = next(a["url"] for a in walk(linked["value"]) if a.get("type") == "Action.OpenUrl")
    path = link.removeprefix("http://127.0.0.1:3978")
    got = await client.get(path)
    assert got.status == 200 and 'filename="licence-overview-2026-11.xlsx"' in got.headers["Content-Disposition"]
    with zipfile.ZipFile(io.BytesIO(await got.read())) as book:
        sheet = book.read("xl/worksheets/sheet1.xml").decode()
    assert "Microsoft 365 Business Basic" in sheet and ">60.00<" in sheet, sheet[:3000]
    assert (await client.get(path)).status == 410
    forged = await _invoke(client, url, download["verb"], {"month": "2026-13"})
    assert "not valid" in str(forged["value"]) and "/exports/" not in str(forged["value"]), forged
    # December: Megan is a billing reader now and gets it too, with the change since November.
    await services.organisations.set_roles(DEMO_SLUG, PLAYGROUND_APPROVER[0], add=["billing"], actor="op")
    await _assign_users(sandbox, customer, ["max"])
    megan = len(fake.messages(MEGAN["conversation_id"]))
    await sandbox.admin("POST", "/clock", {"set": "2027-01-01T09:00:00+00:00"})
    await services.warnings.run_pass()
    [december] = [
        c for c in await _new_cards(fake, MEGAN["conversation_id"], megan) if "Licence overview" in card_text(c)
    ]
    assert "December 2026" in card_text(december) and "3 (+1)" in card_text(december)


async def test_a_licence_overview_nobody_could_receive_is_tried_again_while_due_and_then_sent_once(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=3)
    await sandbox.admin("POST", "/clock", {"set": "2026-12-01T09:00:00+00:00"})
    alex = len(fake.messages(ALEX_CHAT))
    fake.fail_next = 20  # Teams is down during this pass
    await services.warnings.run_pass()
    fake.fail_next = 0
    assert len(fake.messages(ALEX_CHAT)) == alex
    await services.warnings.run_pass()
    await services.warnings.run_pass()
    overviews = [c for c in await _new_cards(fake, ALEX_CHAT, alex) if "Licence overview" in card_text(c)]
    assert len(overviews) == 1 and "November 2026" in card_text(overviews[0])


async def test_a_licence_overview_one_reader_missed_reaches_them_on_the_next_pass_and_nobody_twice(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, _sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=3)
    await services.organisations.set_roles(DEMO_SLUG, PLAYGROUND_APPROVER[0], add=["billing"], actor="op")
    await _say(client, fake, url, "menu", **MEGAN)  # Megan (now a billing reader) has chatted with the bot
    megan_chat = MEGAN["conversation_id"]
    alex, megan = len(fake.messages(ALEX_CHAT)), len(fake.messages(megan_chat))
    await sandbox.admin("POST", "/clock", {"set": "2026-12-01T09:00:00+00:00"})

    def overviews(conversation: str, before: int) -> list[dict[str, Any]]:
        cards = [card_of(m) for m in fake.messages(conversation)[before:]]
        return [c for c in cards if c is not None and "Licence overview" in card_text(c)]

    fake.fail_conversations = {megan_chat}  # Teams refuses Megan's chat during the first pass
    await services.warnings.run_pass()
    assert len(overviews(ALEX_CHAT, alex)) == 1 and overviews(megan_chat, megan) == []
    fake.fail_conversations = set()
    await services.warnings.run_pass()  # still due: Megan gets it now, Alex not a second time
    assert len(overviews(ALEX_CHAT, alex)) == 1 and len(overviews(megan_chat, megan)) == 1
    await services.warnings.run_pass()
    assert len(overviews(ALEX_CHAT, alex)) == 1 and len(overviews(megan_chat, megan)) == 1


async def test_two_passes_at_once_post_each_warning_and_overview_once(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    """Two passes running together (a pass that outlived its job lease and its second runner, or two
    replicas) claim each recipient's post before sending it: nobody gets a warning or an overview twice."""
    fake, url = connector
    client, services, _sid = await _start(make_bot, connector, sqlite_services, sqlite_demo_customer, quantity=10)
    await services.organisations.set_roles(DEMO_SLUG, PLAYGROUND_APPROVER[0], add=["billing"], actor="op")
    await _say(client, fake, url, "menu", **MEGAN)
    megan_chat = MEGAN["conversation_id"]
    alex, megan = len(fake.messages(ALEX_CHAT)), len(fake.messages(megan_chat))
    await sandbox.admin("POST", "/clock", {"set": "2026-12-01T09:00:00+00:00"})  # billing day: overviews due

    def cards(conversation: str, before: int, title: str) -> list[dict[str, Any]]:
        found = [card_of(m) for m in fake.messages(conversation)[before:]]
        return [c for c in found if c is not None and title in card_text(c)]

    await asyncio.gather(services.warnings.run_pass(), services.warnings.run_pass(), services.warnings.run_pass())
    assert len(cards(ALEX_CHAT, alex, "Licence overview")) == 1
    assert len(cards(megan_chat, megan, "Licence overview")) == 1
    warned = [c for c in (card_of(m) for m in fake.messages(ALEX_CHAT)[alex:]) if c is not None]
    titles = [card_text(c).split("\n")[0] for c in warned]
    assert len(titles) == len(set(titles)), titles  # each warning once
