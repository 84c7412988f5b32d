"""One-line commands in the rendered Playground (headless Chromium), typed and clicked as a person
does: one command of each kind — seats (with a pick on the choice card), buying, a licence, a
question — people joining (with the missing seat bought on the same confirm) and leaving (inside
the seats' 7-day window and after it), and a purchase above the spending policy approved by Megan in her own
Playground. Any page error from the card renderer, or a click without a bot answer, fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.container import Services
from tests.commands_world import World, build_world
from tests.conftest import link_demo_customer
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import SharedPlayground, bot_in_playground
from tests.e2e.sandbox_admin import sandbox_admin

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def chat(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[tuple[Browser, Services]]:
    async with (
        bot_in_playground(session_playground, tmp_path) as (playground, services, _),
        chromium.page(playground.base_url, request.node.name) as browser,
    ):
        yield browser, services


async def _world(services: Services, **options: int) -> World:
    return await build_world(services, await link_demo_customer(services), **options)


async def _quantity(world: World, key: str) -> int:
    customer = world.org.partner_center_customer_id
    assert customer
    return (await world.services.partner_center.subscription(customer, world.subscriptions[key])).quantity or 0


async def test_seats_buying_licences_and_questions_in_one_line(chat: tuple[Browser, Services]) -> None:
    browser, services = chat
    world = await _world(services)
    await browser.send("add 2 seats to Business Standard", expect="10 → 12 seats")
    assert await _quantity(world, "standard") == 10
    await browser.click("Add 2 seats", expect="now has 12 seats")
    assert await _quantity(world, "standard") == 12

    await browser.send("add 1 seat to basic", expect="Which subscription do you mean")
    await browser.click("This one: Microsoft 365 Business Basic", near="6 seats, 1 year", expect="6 → 7 seats")
    await browser.screenshot("choice-then-preview")
    await browser.click("Add 1 seat", expect="now has 7 seats")

    await browser.send("buy 2 Visio Plan 1 monthly", expect="Check and create the subscription")
    await browser.click("Create subscription", expect="Subscription created")

    await browser.send("asign E3 to diego", expect="Give Diego Siciliani a licence for Office 365 E3?")
    await browser.click("Assign the licence", expect="Licences assigned")
    answer = await browser.send("who has E3", expect="Diego Siciliani")
    assert any("1 person has a licence for Office 365 E3" in message["text"] for message in answer)


async def test_people_join_with_a_seat_bought_and_leave_with_a_refund(chat: tuple[Browser, Services]) -> None:
    browser, services = chat
    world = await _world(services, standard_seats=1)  # Megan holds the only Business Standard seat
    await browser.send("new user Nestor Wilke with Business Standard", expect="one more seat")
    await browser.screenshot("onboarding")
    await browser.click("Buy the seat, create the user and assign the licence", expect="New user: done")
    assert await _quantity(world, "standard") == 2

    await browser.send("offboard megan", expect="Offboard Megan Bowen?")
    await browser.screenshot("offboarding")
    await browser.click("Offboard Megan Bowen", expect="Offboarding: done")
    assert await _quantity(world, "standard") == 1


async def test_leaving_after_the_seat_window_schedules_the_lower_quantity(chat: tuple[Browser, Services]) -> None:
    """Eight days after the seats were bought no refund is possible: the card offers the renewal (the
    cheapest safe choice, preselected) and the seat is kept free until then."""
    browser, services = chat
    world = await _world(services)
    await sandbox_admin(services, "POST", "/clock", {"advance": "P8D"})
    answer = await browser.send("offboard megan", expect="Offboard Megan Bowen?")
    shown = "\n".join(message["text"] for message in answer)
    assert "with a refund" not in shown and "Renew with 9 seats" in shown
    await browser.screenshot("offboarding-after-the-window")
    await browser.click("Offboard Megan Bowen", expect="Offboarding: done")
    customer = world.org.partner_center_customer_id
    assert customer
    subscription = await services.partner_center.subscription(customer, world.subscriptions["standard"])
    scheduled = subscription.scheduled_next_term_instructions
    assert subscription.quantity == 10 and scheduled is not None and scheduled.quantity == 9


async def test_a_purchase_above_the_policy_is_approved_by_the_approver(
    session_playground: SharedPlayground,
    megans_playground: SharedPlayground,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    chromium: Chromium,
) -> None:
    async with bot_in_playground(session_playground, tmp_path) as (playground, services, _):
        megans_playground.front.target = session_playground.front.target
        try:
            async with (
                chromium.page(playground.base_url, request.node.name + "-alex") as alex,
                chromium.page(megans_playground.playground.base_url, request.node.name + "-megan") as megan,
            ):
                await _world(services)
                await services.spending.set("contoso", actor="e2e", monthly_threshold="100")
                await alex.send("buy 10 Visio Plan 2 monthly", expect="Check and create the subscription")
                assert "needs an approver" in " ".join(m["text"] for m in await alex.messages())
                answer = await alex.click("Create subscription", expect="I asked 1 approver")
                assert any("over the $100.00 threshold" in m["text"] for m in answer)
                await megan.wait_for_text("Spending request")
                await megan.screenshot("spending-request")
                await megan.click("Approve", expect="Approved by Megan Bowen")
                await alex.wait_for_text("Megan Bowen approved your request (Buy 10 × Visio Plan 2)")
                await alex.wait_for_text("Subscription created")
                await alex.screenshot("ordered")
        finally:
            megans_playground.front.target = None
