"""End to end through the Agents Playground: the admin buys 10 seats, the built-in sandbox's clock
moves 6 days on, the bot's own warnings pass (its scheduler and the durable job runner, not the test)
posts the seat-window card into the admin's 1:1 chat, and its button removes the unassigned seats
after the change-quantity preview — as Microsoft's sandbox then shows. And a renewal: 30 days before
it the card's "Renew with 3 seats" schedules the lower quantity, and the sandbox renews with it.

Not run by helpers (the Playground uses fixed ports); the lead runs it with the e2e marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio

from services.container import Services
from tests.cardcheck import assert_valid_card
from tests.chat import walk
from tests.conftest import link_demo_customer
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.e2e.sandbox_admin import sandbox_admin
from tests.fakes import card_text
from tests.subscription_fixtures import buy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def running(session_playground: SharedPlayground, tmp_path: Any) -> AsyncIterator[tuple[Playground, Services]]:
    # The scheduler looks for a due pass every half second (one pass per hour of Microsoft's time).
    async with bot_in_playground(session_playground, tmp_path, warnings_check_seconds=0.5) as (pg, services, _):
        yield pg, services


def _card(message: dict[str, Any]) -> dict[str, Any]:
    cards = [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]
    assert cards, f"expected a card, got {message}"
    assert_valid_card(cards[0])
    return cards[0]


async def _message_with(pg: Playground, words: str, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
    for _ in range(10):
        message = await pg.next_bot_message(timeout=timeout)
        cards = [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]
        said = card_text(cards[0]) if cards else str(message.get("text", ""))
        if words in said:
            return message
    raise AssertionError(f"no bot message saying {words!r}")


def _button(card: dict[str, Any], title: str) -> dict[str, Any]:
    found = [n for n in walk(card.get("actions", [])) if n.get("type") == "Action.Execute" and n.get("title") == title]
    assert found, f"no button {title!r} in {card_text(card)}"
    return found[0]


async def test_six_days_after_a_purchase_the_warning_arrives_and_its_button_removes_the_seats(running):
    pg, services = running
    org = await link_demo_customer(services)
    sid = await buy(services, org, quantity=10)
    chat = pg.personal_conversation_id
    await pg.send_text(chat, "menu")  # the bot now knows the admin's 1:1 chat
    await _message_with(pg, "What would you like to do?")

    await sandbox_admin(services, "POST", "/clock", {"advance": "P6D"})
    posted = await _message_with(pg, "Seats you can still return", timeout=60)
    assert posted["actionConversationId"] == chat
    card = _card(posted)
    assert "9 seats" in card_text(card)
    remove = _button(card, "Remove 9 seats")

    answer = await pg.invoke(
        chat,
        {"action": {"type": "Action.Execute", "verb": remove["verb"], "data": remove["data"]}},
        reply_to_id=posted["messageId"],
    )
    preview = answer["value"]
    assert_valid_card(preview)
    assert "Remove 9 seats of Microsoft 365 Business Basic?" in card_text(preview)
    confirm = _button(preview, "Remove 9 seats")
    answer = await pg.invoke(
        chat,
        {"action": {"type": "Action.Execute", "verb": confirm["verb"], "data": confirm["data"]}},
        reply_to_id=posted["messageId"],
    )
    assert_valid_card(answer["value"])
    assert "now has 1 seat (was 10)" in card_text(answer["value"])
    customer = org.partner_center_customer_id
    assert customer
    assert (await services.partner_center.subscription(customer, sid)).quantity == 1


async def test_the_renewal_card_schedules_fewer_seats_and_the_sandbox_renews_with_them(running):
    pg, services = running
    org = await link_demo_customer(services)
    customer = org.partner_center_customer_id
    assert customer
    sid = await buy(services, org, quantity=10, term="P1Y", cycle="annual")
    for name in ("kim", "lee", "max"):  # three people use it
        user = await sandbox_admin(
            services,
            "POST",
            f"/customers/{customer}/users",
            {"userPrincipalName": f"{name}@contosodemo.onmicrosoft.com", "displayName": name, "usageLocation": "US"},
        )
        licence = (await services.partner_center.subscribed_skus(customer))[0].product_sku.id
        await sandbox_admin(
            services, "POST", f"/customers/{customer}/users/{user['id']}/licenses", {"assign": [licence]}
        )
    chat = pg.personal_conversation_id
    await pg.send_text(chat, "menu")
    await _message_with(pg, "What would you like to do?")

    current = await services.partner_center.subscription(customer, sid)
    assert current.commitment_end_date is not None
    renewal = current.commitment_end_date.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    await sandbox_admin(services, "POST", "/clock", {"set": (renewal - timedelta(days=30)).isoformat()})
    posted = await _message_with(pg, "renews on", timeout=60)
    renew = _button(_card(posted), "Renew with 3 seats")
    answer = await pg.invoke(
        chat,
        {"action": {"type": "Action.Execute", "verb": renew["verb"], "data": renew["data"]}},
        reply_to_id=posted["messageId"],
    )
    assert_valid_card(answer["value"])
    assert "will renew with 3 seats" in card_text(answer["value"])

    await sandbox_admin(services, "POST", "/clock", {"set": (renewal + timedelta(hours=1)).isoformat()})
    renewed = await services.partner_center.subscription(customer, sid)
    assert renewed.quantity == 3 and renewed.scheduled_next_term_instructions is None
