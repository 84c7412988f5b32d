"""Two people in two rendered Playgrounds (headless Chromium) on one bot: Alex, the admin, asks to
suspend a subscription; Megan, the approver, approves it on the card in the approvals channel; Alex
is told and reactivates it. Then a request no approver has seen yet is withdrawn. Every step is a
click on a rendered card."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select

from services.container import Services
from services.models import ConversationReferenceRow
from tests.conftest import link_demo_customer
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.subscription_fixtures import buy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PRODUCT = "Microsoft 365 Business Basic"


@pytest_asyncio.fixture(loop_scope="session")
async def people(
    session_playground: SharedPlayground,
    megans_playground: SharedPlayground,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    chromium: Chromium,
) -> AsyncIterator[tuple[Browser, Browser, Playground, Services]]:
    """Alex's browser on the bot's Playground, Megan's on a second Playground of the same bot."""
    async with bot_in_playground(session_playground, tmp_path) as (playground, services, _):
        megans_playground.front.target = session_playground.front.target
        try:
            async with (
                chromium.page(playground.base_url, request.node.name + "-alex") as alex,
                chromium.page(megans_playground.playground.base_url, request.node.name + "-megan") as megan,
            ):
                org = await link_demo_customer(services)
                await buy(services, org, quantity=5)
                yield alex, megan, megans_playground.playground, services
        finally:
            megans_playground.front.target = None


async def _remembered(services: Services, prefix: str) -> str:
    """The stored conversation the bot remembered for a channel (once it has handled the mention)."""
    for _ in range(100):
        async with services.sessions() as session:
            found = await session.scalar(
                select(ConversationReferenceRow.conversation_id).where(
                    ConversationReferenceRow.conversation_id.startswith(prefix)
                )
            )
        if found:
            return str(found)
        await asyncio.sleep(0.1)
    raise AssertionError(f"the bot did not remember {prefix}")


async def test_megan_approves_in_the_approvals_channel_and_alex_reactivates(people) -> None:
    alex, megan, megan_playground, services = people
    # Megan opens the team's General channel (the bot is installed there and greets her); the
    # operator makes it the organisation's approvals channel.
    await megan.open_chat("General")
    await megan.wait_for_text("Welcome, Megan Bowen")
    channel = await _remembered(services, "team-id")
    await services.approvals.set_channel("contoso", channel, actor="e2e")

    await alex.send("subscriptions", expect=PRODUCT)
    await alex.click("Suspend", expect="Why? (the approver reads this)")
    await alex.fill("Why? (the approver reads this)", "Project paused until spring")
    answer = await alex.click("Ask an approver", expect="waiting for an approver")
    assert any(
        "I asked 1 approver in a 1:1 chat and posted the request in the approvals channel" in m["text"] for m in answer
    )
    await alex.screenshot("asked")

    await megan.wait_for_text("Suspension request")
    await megan.screenshot("request-in-channel")
    await megan.click("Approve", expect="Approved by Megan Bowen")
    await megan.screenshot("approved")

    await alex.wait_for_text(f"Megan Bowen approved your request: {PRODUCT} is suspended")
    await alex.send("subscriptions", expect="Suspended")
    await alex.click("Reactivate", expect=f"Reactivate {PRODUCT}?")
    await alex.click("Reactivate", expect="is active again")
    await alex.screenshot("reactivated")


async def test_a_request_no_approver_saw_is_delivered_when_she_arrives_or_withdrawn(people) -> None:
    alex, megan, _, services = people
    await alex.send("subscriptions", expect=PRODUCT)
    await alex.click("Suspend", expect="Why? (the approver reads this)")
    await alex.fill("Why? (the approver reads this)", "Seasonal staff left")
    # Megan's Playground opened her chat before the request: she has it already. So ask first,
    # then look at her chat: the request reached her 1:1 chat.
    answer = await alex.click("Ask an approver", expect="waiting for an approver")
    assert any("I asked 1 approver" in m["text"] for m in answer)
    await megan.wait_for_text("Seasonal staff left")
    await alex.click("Withdraw the suspension request", expect="stays active")
    await megan.wait_for_text("Withdrawn by Alex Wilber")
    await megan.screenshot("withdrawn")
    assert "Approve" not in await megan.buttons()
