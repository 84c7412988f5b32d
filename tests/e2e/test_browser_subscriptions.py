"""In the rendered Playground (headless Chromium), as a customer admin: create the tenant, buy a
subscription and change its quantity; order an add-on, cancel it, turn auto-renew off and on, and
schedule fewer seats for the renewal once the 7-day window has passed — all by clicking the cards'
real buttons. Any page error from the card renderer, or a click without a bot answer, fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services import formatting
from services.container import Services
from tests.conftest import link_demo_customer
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import SharedPlayground, bot_in_playground
from tests.e2e.sandbox_admin import sandbox_admin
from tests.subscription_fixtures import admin
from tests.subscription_fixtures import buy as buy_directly

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

MCA = "On behalf of Contoso Ltd, I accept the Microsoft Customer Agreement."


@pytest_asyncio.fixture(loop_scope="session")
async def chat(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[tuple[Browser, Services]]:
    async with (
        bot_in_playground(session_playground, tmp_path) as (playground, services, _),
        chromium.page(playground.base_url, request.node.name) as browser,
    ):
        yield browser, services


async def create_tenant(browser: Browser) -> None:
    await browser.send("add tenant", expect="Create a new tenant")
    await browser.click("Create a new tenant", expect="Check and continue")
    await browser.click("Check and continue", expect="Create this Microsoft 365 tenant?")
    await browser.check(MCA)
    await browser.click("Create the tenant", expect="Add a subscription")


async def buy(browser: Browser, product: str, term: str, quantity: int) -> None:
    await browser.send("add subscription", expect="Pick a category")
    await browser.click("Business", expect="Pick a product group")
    await browser.click("Microsoft 365", expect=product)
    await browser.click_in_place("Show details", near=product)
    assert "Hide details" in await browser.buttons() and "Offer id / item code" in await browser.card_text()
    await browser.click_in_place("Hide details", near=product)
    await browser.click("Choose", near=product, expect="Term and billing frequency")
    await browser.select("Term and billing frequency", term)
    await browser.fill("Quantity (1–300 licences)", str(quantity))
    await browser.click("Show price", expect="Create subscription")
    await browser.click("Create subscription", expect="Subscription created")


async def test_an_admin_buys_and_changes_the_quantity_by_clicking(chat: tuple[Browser, Services]) -> None:
    browser, services = chat
    await create_tenant(browser)
    await buy(browser, "Microsoft 365 Business Standard", "1-year commitment, billed monthly", 5)
    await browser.send("subscriptions", expect="Your subscriptions")
    await browser.click("Change quantity", expect="New number of seats")
    await browser.fill("New number of seats", "7")
    await browser.click("Show the cost", expect="5 → 7 seats")
    await browser.screenshot("quantity-preview")
    answer = await browser.click("Add 2 seats", expect="7 seats")
    # The preview the admin confirmed is now a read-only record in place; the list follows it.
    record = next(m for m in answer if "5 → 7 seats" in m["text"])
    assert "✓ Add 2 seats — Alex Wilber" in record["text"] and "Add 2 seats\n" not in record["text"]
    await browser.screenshot("confirmed")
    page = await services.subscriptions.page(await admin(services))
    assert [row.quantity for row in page.items] == [7]


BASIC = "Microsoft 365 Business Basic"


async def test_an_admin_orders_and_cancels_an_add_on_flips_auto_renew_and_schedules_fewer_seats(
    chat: tuple[Browser, Services],
) -> None:
    browser, services = chat
    org = await link_demo_customer(services)
    await buy_directly(services, org, quantity=5)
    await services.subscriptions.sync(org.id)
    me = await admin(services)

    # An add-on: the offers that fit, with their price; ordering one shows it under its base.
    await browser.send("subscriptions", expect=BASIC)
    await browser.click("Add-ons", expect=f"Add-ons for {BASIC}")
    await browser.screenshot("add-ons")
    await browser.fill("Quantity", "2")
    answer = await browser.click("Order the add-on", expect="Ordered 2 ×")
    await browser.screenshot("add-on-ordered")
    (base,) = (await services.subscriptions.page(me)).items
    (addon,) = base.addons
    assert any(addon.name in m["text"] for m in answer)

    # Cancel it inside Microsoft's 7-day window: the refund is shown before confirming.
    await browser.click("Cancel", near=addon.name, expect=f"Cancel {addon.name}?")
    assert "Refund" in await browser.card_text()
    await browser.screenshot("cancel-preview")
    await browser.click("Cancel the subscription", expect=f"{addon.name} is cancelled")

    # Auto-renew off, then on again: the renewal date is named both ways.
    renewal = formatting.date(base.renewal_date)
    await browser.click("Auto-renew off", near=BASIC, expect=f"Auto-renew off for {BASIC}?")
    await browser.click("Turn auto-renew off", expect=f"Auto-renew is off: {BASIC} ends on {renewal}")
    await browser.click("Auto-renew on", near=BASIC, expect=f"Auto-renew on for {BASIC}?")
    await browser.click("Turn auto-renew on", expect=f"Auto-renew is on: {BASIC} renews on {renewal}")
    await browser.screenshot("auto-renew-on")

    # Eight days on, seats can no longer be removed now: a lower number is scheduled for the renewal.
    await sandbox_admin(services, "POST", "/clock", {"advance": "P8D"})
    await browser.send("subscriptions", expect=BASIC)
    await browser.click("Change quantity", near=BASIC, expect="New number of seats")
    assert "No seat can be removed now" in await browser.card_text(), await browser.card_text()
    await browser.fill("New number of seats", "3")
    await browser.click("Show the cost", expect="Schedule 3 seats for the renewal")
    await browser.screenshot("schedule-preview")
    await browser.click(
        "Schedule 3 seats for the renewal",
        expect=f"{BASIC} will renew with 3 seats on {renewal}; until then it keeps 5 seats.",
    )
    await browser.screenshot("scheduled")
    (base,) = (await services.subscriptions.page(me)).items
    assert (base.quantity, base.scheduled_quantity, base.auto_renew) == (5, 3, True)
