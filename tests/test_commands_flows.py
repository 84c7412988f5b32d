"""One-line commands end to end over the real endpoint: nothing changes before the confirm click, the
click is carried out by the full task's own code exactly once, and the card becomes its record."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.models import Approval, Job
from tests.commands_world import Typist, World, build_world, click, last_card, licence_of
from tests.conftest import runtime_of
from tests.fakes import card_text, said


@pytest.fixture
async def world(sqlite_services, sqlite_demo_customer) -> World:
    return await build_world(sqlite_services, sqlite_demo_customer)


@pytest.fixture
async def alex(make_bot, connector, world, sandbox) -> Typist:  # noqa: ARG001 - a fixture this one needs for its effect
    fake, url = connector
    client = await make_bot()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    return Typist(client, fake, url)


async def _quantity(world: World, subscription_id: str) -> int:
    customer = world.org.partner_center_customer_id
    assert customer
    return (await world.services.partner_center.subscription(customer, subscription_id)).quantity or 0


async def test_add_seats_is_confirmed_once_and_the_card_becomes_its_record(alex: Typist, world: World) -> None:
    card = last_card(await alex.say("add 5 seats to Business Standard"))
    assert await _quantity(world, world.subscriptions["standard"]) == 10  # nothing before the click
    value = click(card, "Add 5 seats")
    done = await alex.say(value=value)
    assert "Microsoft 365 Business Standard now has 15 seats (was 10)" in said(done[-1])
    assert await _quantity(world, world.subscriptions["standard"]) == 15
    [record] = [r for r in alex.fake.records() if "Add 5 seats —" in said(r.activity)]
    assert "10 → 15 seats" in said(record.activity)
    again = await alex.say(value=value)
    assert "already done from this card" in said(again[-1])
    assert await _quantity(world, world.subscriptions["standard"]) == 15


async def test_a_pick_on_the_choice_card_shows_that_subscriptions_confirmation(alex: Typist, world: World) -> None:
    choice = last_card(await alex.say("add 2 seats to basic"))
    preview = last_card(await alex.say(value=click(choice, "This one: Microsoft 365 Business Basic")))
    # the first option is the yearly one (6 seats): its preview replaced the choice card
    assert "Microsoft 365 Business Basic: 6 → 8 seats" in card_text(preview)
    await alex.say(value=click(preview, "Add 2 seats"))
    assert await _quantity(world, world.subscriptions["basic_year"]) == 8
    assert await _quantity(world, world.subscriptions["basic_month"]) == 2


async def test_none_of_these_changes_nothing(alex: Typist, world: World) -> None:
    choice = last_card(await alex.say("add 2 seats to basic"))
    replies = await alex.say(value=click(choice, "None of these"))
    assert "Nothing was changed." in said(replies[-1])
    assert await _quantity(world, world.subscriptions["basic_year"]) == 6


async def test_assign_a_licence_to_someone_without_a_usage_location(alex: Typist, world: World) -> None:
    card = last_card(await alex.say("assign E3 to lidia"))
    outcome = await alex.say(value=click(card, "Assign the licence", usage_location="GB"))
    assert "Lidia Holloway: assigned" in said(outcome[-1])
    licence = await licence_of(world.services, world.subscriptions["o365e3"])
    customer = world.org.partner_center_customer_id
    assert customer
    held = await world.services.partner_center.user_licenses(customer, world.users["lidia"])
    assert licence in [item.product_sku.id.lower() for item in held]
    answer = await alex.say("who has E3")
    assert "Lidia Holloway" in said(answer[-1])


@pytest.mark.usefixtures("world")
async def test_remove_a_licence_frees_the_seat(alex: Typist) -> None:
    card = last_card(await alex.say("remove Business Standard from megan"))
    outcome = await alex.say(value=click(card, "Remove the licence"))
    assert "Licences removed" in said(outcome[-1])
    answer = await alex.say("how many Business Standard seats are free")
    assert "10 of 10" in said(answer[-1])


async def test_buy_places_one_order_for_a_double_click(alex: Typist, world: World) -> None:
    card = last_card(await alex.say("buy 3 Microsoft 365 Business Basic monthly"))
    value = click(card, "Create subscription")
    first = await alex.say(value=value)
    assert "Ordering **Microsoft 365 Business Basic** × 3" in said(first[-1])
    await alex.say(value=value)
    async with world.services.sessions() as session:
        orders = await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "order_subscription"))
    assert orders == 1


async def test_suspend_asks_an_approver_with_the_reason(alex: Typist, world: World) -> None:
    card = last_card(await alex.say("suspend Visio"))
    async with world.services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Approval)) == 0
    await alex.say(value=click(card, "Ask an approver", reason="Project paused"))
    async with world.services.sessions() as session:
        [approval] = list(await session.scalars(select(Approval)))
    assert approval.reason == "Project paused" and approval.subscription_id == world.subscriptions["visio"]


async def test_help_shows_example_commands(alex: Typist) -> None:
    replies = await alex.say("help")
    assert "Or say it in one line" in said(replies[-1]) and "assign E3 to diego" in said(replies[-1])
