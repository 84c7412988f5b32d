"""The Bills message extension in the rendered Playground (headless Chromium): Alex searches this
year's bills from the compose box, puts this month's bill into the chat, and opens its full report
from the card. The Playground reads no app manifest, so it lists no apps: its compose-box button
"Trigger Message Extension App" → "Search Command" sends the search to the bot as our one search
command would."""

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
from tests.subscription_fixtures import buy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def chat(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[tuple[Browser, Services]]:
    """Contoso bought five Business Basic seats this month (elsewhere; the bot has synced them)."""
    async with bot_in_playground(session_playground, tmp_path) as (playground, services, _):
        org = await link_demo_customer(services)
        await buy(services, org, quantity=5)
        await services.subscriptions.sync(org.id)
        async with chromium.page(playground.base_url, request.node.name) as browser:
            await browser.wait_for_text("Welcome, Alex Wilber")
            yield browser, services


async def test_a_bill_found_with_the_message_extension_is_shared_and_opens_its_report(
    chat: tuple[Browser, Services],
) -> None:
    browser, services = chat
    month = formatting.month(await services.billing.today())
    panel = await browser.extension_search("this year", expect=f"{month}: $")
    title = next(line for line in panel.splitlines() if line.startswith(f"{month}: $"))
    await browser.screenshot("search")
    await browser.extension_share(title)
    shared = await browser.wait_for_text(f"Bill — {month}")
    assert shared["author"] != "Test Bot" and shared["card"]
    # Shown to people, not said to the bot: the next answer is to "menu", and nothing came before it.
    await browser.send("menu", expect="What would you like to do?")
    assert not [m for m in await browser.messages() if "I did not catch that" in m["text"]]
    await browser.screenshot("shared")
    answer = await browser.click("Full report", expect="Export to Excel")
    assert any(title.split(": ")[1] in m["text"] for m in answer)
    await browser.screenshot("full-report")
