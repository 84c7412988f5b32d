"""In the rendered Playground (headless Chromium), as a new customer admin: the tenant form shown
again with an error replaces itself, "Change details" goes back to it, and the tenant is created;
or the existing tenant is linked once its global admin accepted the reseller."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from services.container import Services
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import SharedPlayground, bot_in_playground, shared_playground
from tests.e2e.sandbox_admin import sandbox_admin

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

MCA = "On behalf of Contoso Ltd, I accept the Microsoft Customer Agreement."
DOMAIN_PREFIX = "Domain prefix (<prefix>.onmicrosoft.com: letters and digits, starts with a letter, at most 27)"


@pytest_asyncio.fixture(loop_scope="session")
async def chat(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[tuple[Browser, Services]]:
    async with (
        bot_in_playground(session_playground, tmp_path) as (playground, services, _),
        chromium.page(playground.base_url, request.node.name) as browser,
    ):
        yield browser, services


async def _form_cards(browser: Browser) -> int:
    return sum("Check and continue" in m["text"] for m in await browser.messages())


async def test_the_form_corrects_in_place_and_the_tenant_is_created(chat: tuple[Browser, Services]) -> None:
    browser, services = chat
    await browser.send("add tenant", expect="Create a new tenant")
    await browser.click("Create a new tenant", expect="Check and continue")
    # The country and its state are chosen from lists (named, submitting Microsoft's codes).
    await browser.select("Country", "United States")
    await browser.select("State or region (required in United States)", "Washington (WA)")
    await browser.screenshot("country-and-state")
    await browser.fill("Contact phone", "020 7946 0000")  # a British number: no US number
    await browser.fill(DOMAIN_PREFIX, "9 not a prefix")
    await browser.click("Check and continue", expect="starts with a letter")
    await browser.wait_for_text("is not a valid phone number for United States")
    await browser.screenshot("form-error")
    assert await _form_cards(browser) == 1, "the form shown again must replace the first copy"
    await browser.fill("Contact phone", "425 555 0100")
    await browser.fill(DOMAIN_PREFIX, "contosobrowser")
    await browser.click("Check and continue", expect="Create this Microsoft 365 tenant?")
    await browser.click("Change details", expect="Check and continue")
    await browser.click("Check and continue", expect="contosobrowser.onmicrosoft.com")
    await browser.wait_for_text("+1 425-555-0100")  # written the international way
    await browser.check(MCA)
    answer = await browser.click("Create the tenant", expect="Working on it")
    assert any("✓ Create the tenant — Alex Wilber" in m["text"] for m in answer)
    await browser.wait_for_text("Your Microsoft 365 tenant is ready")
    await browser.click("My services", expect="Created here")
    await browser.screenshot("my-services")
    org = await services.organisations.get("contoso")
    assert org.partner_center_customer_id


GUID_TENANT_CONFIG = Path(__file__).with_name("playground-guid-tenant.yml")
GUID_TENANT = "6b2f1c7e-3d4a-4b5c-8d9e-0f1a2b3c4d5e"


async def test_an_existing_tenant_is_linked_once_its_admin_accepted(
    tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> None:
    async with (
        shared_playground(GUID_TENANT_CONFIG) as own,
        bot_in_playground(own, tmp_path) as (playground, services, _),
    ):
        await services.organisations.link_teams_tenant("contoso", GUID_TENANT, actor="e2e")
        async with chromium.page(playground.base_url, request.node.name) as browser:
            await browser.send("add tenant", expect="I have accepted — check now")
            await browser.click("I have accepted — check now", expect="does not list your tenant")
            await sandbox_admin(
                services,
                "POST",
                "/relationships/accept",
                {"tenantId": GUID_TENANT, "companyName": "Contoso Ltd", "domain": "contosolinked.onmicrosoft.com"},
            )
            await browser.click("I have accepted — check now", expect="Accept the Microsoft Customer Agreement")
            await browser.check(MCA)
            await browser.click("Record the acceptance", expect="Recorded with Microsoft")
            await browser.screenshot("linked")
        org = await services.organisations.get("contoso")
        assert org.partner_center_customer_id == GUID_TENANT
