"""End to end through the Agents Playground: an admin buys a subscription with "add subscription"
(category → group → product → term and quantity → price → create), with the bot on the embedded
default (its own sandbox, the demo price list generated at start-up), the demo organisation linked
to a sandbox customer with the Microsoft Customer Agreement attested. The subscription then exists
in the sandbox, in the bot's mirror and in the ledger — once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select

from cards import ordering as ui
from services.container import Services
from services.models import LedgerEntry, SubscriptionRow
from tests.conftest import link_demo_customer
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.e2e.test_playground import _card
from tests.e2e.test_users_playground import _submit_data
from tests.fakes import card_text

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

BASIC = "CFQ7TTC0LH18:0001"


@pytest_asyncio.fixture(loop_scope="session")
async def linked(
    session_playground: SharedPlayground, tmp_path: Any
) -> AsyncIterator[tuple[Playground, Services, str]]:
    async with bot_in_playground(session_playground, tmp_path) as (pg, services, _):
        org = await link_demo_customer(services)
        assert org.partner_center_customer_id
        yield pg, services, org.partner_center_customer_id


def _pick(card: dict[str, Any], value: str) -> dict[str, Any]:
    """The submit data of the PICK button whose value is `value`."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            data = node.get("data")
            if node.get("type") == "Action.Submit" and isinstance(data, dict):
                if data.get("verb") == ui.PICK and data.get("value") == value:
                    found.append(dict(data))
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    assert found, f"no choice {value!r} on: {card_text(card)}"
    return found[0]


async def _next(pg: Playground) -> tuple[dict[str, Any], dict[str, Any]]:
    message = await pg.next_bot_message(timeout=30)
    return message, _card(message)


async def test_buy_a_subscription_that_then_appears_in_the_sandbox(
    linked: tuple[Playground, Services, str],
) -> None:
    pg, services, customer_id = linked
    chat = pg.personal_conversation_id

    await pg.send_text(chat, "add subscription")
    message, categories = await _next(pg)
    assert "Pick a category" in card_text(categories)
    await pg.submit(chat, message["messageId"], _pick(categories, "Business"))
    message, groups = await _next(pg)
    await pg.submit(chat, message["messageId"], _pick(groups, "Microsoft 365"))
    message, products = await _next(pg)
    listing = card_text(products)
    assert "Microsoft 365 Business Basic" in listing and BASIC in listing  # offer id under "Show details"
    await pg.submit(chat, message["messageId"], _pick(products, BASIC))
    message, configure = await _next(pg)
    assert "Quantity (1–300 licences)" in card_text(configure)
    await pg.submit(
        chat,
        message["messageId"],
        {**_submit_data(configure, ui.QUOTE), "plan": "P1Y:monthly", "quantity": 4},
    )
    message, quote = await _next(pg)
    shown = card_text(quote)
    assert "4 licences" in shown and "$22.08 per month" in shown and "billing rules" in shown

    await pg.submit(chat, message["messageId"], _submit_data(quote, ui.CREATE))
    working = await pg.next_bot_message(timeout=30)
    assert "Ordering **Microsoft 365 Business Basic** × 4" in str(working.get("text", ""))
    _, done = await _next(pg)  # the job's follow-up
    text = card_text(done)
    assert "Subscription created" in text and "Costs now start under Microsoft's billing rules." in text

    bought = await services.partner_center.subscriptions(customer_id)
    assert len(bought) == 1 and bought[0].quantity == 4 and bought[0].id in text
    async with services.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(SubscriptionRow)) == 1
        assert await session.scalar(select(func.count()).select_from(LedgerEntry)) == 1
