"""In the rendered Playground (headless Chromium), as a new customer admin: create the tenant, buy a
subscription, and change its quantity by clicking the cards' real buttons. Any page error from the
card renderer, or a click without a bot answer, fails the test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.container import Services
from tests.e2e.browser import Browser
from tests.e2e.playground import SharedPlayground, bot_in_playground
from tests.subscription_fixtures import admin

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MCA = "On behalf of Contoso Ltd, I accept the Microsoft Customer Agreement."


@pytest_asyncio.fixture(loop_scope="module")
async def chat(
    module_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Browser, Services]]:
    async with (
        bot_in_playground(module_playground, tmp_path) as (playground, services, _),
        Browser(playground.base_url, request.node.name) as browser,
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
