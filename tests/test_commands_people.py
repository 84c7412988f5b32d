"""People joining and leaving in one flow, over the real endpoint and the sandbox: a new user with a
free seat, a new user with a seat bought on the same confirm, offboarding inside and outside the
seats' 7-day window, and a step Microsoft fails reported per step with a Retry that finishes it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from services.models import AuditEntry
from tests.chat import inputs
from tests.commands_world import Typist, World, build_world, click, last_card, licence_of
from tests.conftest import outbox_messages, runtime_of
from tests.fakes import card_text, said


async def _start(make_bot, connector, sandbox) -> Typist:
    fake, url = connector
    client = await make_bot()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    return Typist(client, fake, url)


async def _holders(world: World, subscription_key: str) -> set[str]:
    customer = world.org.partner_center_customer_id
    assert customer
    licence = await licence_of(world.services, world.subscriptions[subscription_key])
    holders = set()
    async for user in world.services.partner_center.users(customer):
        held = await world.services.partner_center.user_licenses(customer, user.id or "")
        if licence in [item.product_sku.id.lower() for item in held]:
            holders.add((user.user_principal_name or "").split("@")[0])
    return holders


async def _quantity(world: World, key: str) -> tuple[int, int | None]:
    customer = world.org.partner_center_customer_id
    assert customer
    sub = await world.services.partner_center.subscription(customer, world.subscriptions[key])
    scheduled = sub.scheduled_next_term_instructions
    return sub.quantity or 0, scheduled.quantity if scheduled is not None else None


async def test_new_user_with_a_free_seat(make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, outbox):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("new user Nestor Wilke with E3"))
    text = card_text(card)
    assert "New user Nestor Wilke with Office 365 E3" in text and "5 of 5" in text and "bought with it" not in text
    assert inputs(card)["user_name"] == "nestor.wilke" and inputs(card)["password_email"] == "alexw@example.com"
    assert "nestor" not in await _holders(world, "o365e3")  # nothing before the click
    done = last_card(await alex.say(value=click(card, "Create the user and assign the licence")))
    assert "New user: done" in card_text(done) and "✔ **Assign the licence**: assigned" in card_text(done)
    assert "nestor.wilke" in await _holders(world, "o365e3")
    assert any("nestor.wilke@" in str(mail) for mail in outbox_messages(outbox))


async def test_new_user_buys_the_seat_that_is_missing_on_the_same_confirm(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    world = await build_world(sqlite_services, sqlite_demo_customer, standard_seats=1)  # Megan holds it
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("new user diego sanchez with business standard"))
    text = card_text(card)
    assert "0 of 1 (1 assigned)" in text and "one more seat of Microsoft 365 Business Standard" in text
    assert "1 → 2" in text and "Charged now (pro rata)" in text and "$5.75" in text and "$23.00" in text
    assert inputs(card)["first_name"] == "Diego" and inputs(card)["user_name"] == "diego.sanchez"
    assert await _quantity(world, "standard") == (1, None)
    value = click(card, "Buy the seat, create the user and assign the licence")
    done = last_card(await alex.say(value=value))
    assert "New user: done" in card_text(done), card_text(done)
    assert await _quantity(world, "standard") == (2, None)
    assert "diego.sanchez" in await _holders(world, "standard")
    again = await alex.say(value=value)
    assert "already done from this card" in said(again[-1])
    assert await _quantity(world, "standard") == (2, None)


async def test_offboarding_inside_the_window_refunds_the_seat(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("offboard megan"))
    text = card_text(card)
    assert "Offboard Megan Bowen?" in text and "Block sign-in" in text and "Microsoft 365 Business Standard" in text
    assert "Remove the seat now with a refund" in text and "Renew with 9 seats" in text and "Keep the seat free" in text
    [choice] = [value for name, value in inputs(card).items() if name.startswith("seat_")]
    assert choice.endswith(":refund")  # the cheapest choice Microsoft allows now
    done = last_card(await alex.say(value=click(card, "Offboard Megan Bowen")))
    assert "Offboarding: done" in card_text(done), card_text(done)
    assert "megan" not in await _holders(world, "standard")
    assert await _quantity(world, "standard") == (9, None)
    async with world.services.sessions() as session:
        [entry] = list(await session.scalars(select(AuditEntry).where(AuditEntry.action == "user.offboard")))
    assert [step["ok"] for step in entry.after["steps"]] == [True, True, True]


async def test_offboarding_after_the_window_schedules_the_lower_quantity(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    sandbox.clock.advance(timedelta(days=8))
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("offboard megan"))
    assert "Remove the seat now with a refund" not in card_text(card)
    [choice] = [value for name, value in inputs(card).items() if name.startswith("seat_")]
    assert choice.endswith(":renewal")
    done = last_card(await alex.say(value=click(card, "Offboard Megan Bowen")))
    assert "Offboarding: done" in card_text(done), card_text(done)
    assert await _quantity(world, "standard") == (10, 9)


async def test_a_failed_step_is_reported_and_retry_finishes_the_flow(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("offboard megan"))
    value = click(card, "Offboard Megan Bowen")
    fault = {"kind": "error", "status": 503, "method": "POST", "path": "*/licenseupdates", "repeat": 50}
    await sandbox.admin("POST", "/faults", fault)
    failed = last_card(await alex.say(value=value))
    text = card_text(failed)
    assert (
        "Offboarding: not finished" in text and "✔ **Block sign-in**" in text and "✖ **Remove every licence**" in text
    )
    assert await _quantity(world, "standard") == (10, None)  # nothing after the failed step
    await sandbox.admin("DELETE", "/faults")  # Microsoft is back
    done = last_card(await alex.say(value=click(failed, "Retry")))
    assert "Offboarding: done" in card_text(done), card_text(done)
    assert "megan" not in await _holders(world, "standard")
    assert await _quantity(world, "standard") == (9, None)


@pytest.mark.parametrize("typed", ["offboard nobody", "new user Kim Lee with E5"])
async def test_bad_people_commands_change_nothing(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, typed
):
    await build_world(sqlite_services, sqlite_demo_customer)
    alex = await _start(make_bot, connector, sandbox)
    replies = await alex.say(typed)
    shown = said(replies[-1])
    assert "is not a user of your tenant" in shown or "has no" in shown, shown


async def test_a_licence_microsoft_refused_to_a_new_user_is_given_on_retry(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("new user Nestor Wilke with E3"))
    fault = {"kind": "error", "status": 503, "method": "POST", "path": "*/licenseupdates", "repeat": 50}
    await sandbox.admin("POST", "/faults", fault)
    failed = last_card(await alex.say(value=click(card, "Create the user and assign the licence")))
    assert "✔ **Create the user**" in card_text(failed) and "✖ **Assign the licence**" in card_text(failed)
    await sandbox.admin("DELETE", "/faults")
    done = last_card(await alex.say(value=click(failed, "Retry")))
    assert "New user: done" in card_text(done), card_text(done)
    assert "nestor.wilke" in await _holders(world, "o365e3")


async def test_a_seat_above_the_spending_policy_is_not_bought_by_onboarding(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    world = await build_world(sqlite_services, sqlite_demo_customer, standard_seats=1)
    await sqlite_services.spending.set("contoso", actor="op", monthly_threshold="5")
    alex = await _start(make_bot, connector, sandbox)
    card = last_card(await alex.say("new user Nestor Wilke with Business Standard"))
    assert "Buying the seat needs an approver under your spending policy" in card_text(card)
    result = last_card(await alex.say(value=click(card, "Buy the seat, create the user and assign the licence")))
    text = card_text(result)
    assert "✔ **Create the user**" in text and "✖ **Buy one more seat**" in text and "needs an approver" in text
    assert await _quantity(world, "standard") == (1, None)


async def test_offboard_from_the_users_card(make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    alex = await _start(make_bot, connector, sandbox)
    await alex.say("users")
    user = last_card(await alex.say(value={"verb": "users_open", "user_id": world.users["megan"]}))
    offboard = last_card(await alex.say(value=click(user, "Offboard…")))
    assert "Offboard Megan Bowen?" in card_text(offboard) and "Microsoft 365 Business Standard" in card_text(offboard)
