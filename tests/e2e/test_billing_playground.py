"""End to end through the Agents Playground: buy in the built-in sandbox, add seats a day later on
the sandbox's clock, move the sandbox's clock into the next month, ask "billing last month" in the
personal chat, get the report card, export it as CSV through the link the bot sends, and search the
bills from the compose box (`composeExtension/query` through `/_conversation/v1/invoke`).

Not run by helpers (the Playground uses fixed ports); the lead runs it with the e2e marker."""

from __future__ import annotations

import asyncio
import calendar
import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from services.billing.export import CSV_COLUMNS
from services.container import Services
from tests.cardcheck import assert_valid_card
from tests.conftest import link_demo_customer
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.fakes import card_text
from tests.subscription_fixtures import admin

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

BASIC = "CFQ7TTC0LH18:0001"


@pytest_asyncio.fixture(loop_scope="session")
async def running(session_playground: SharedPlayground, tmp_path: Any) -> AsyncIterator[tuple[Playground, Services]]:
    async with bot_in_playground(session_playground, tmp_path) as (pg, services, _):
        yield pg, services


async def _sandbox_clock(services: Services, body: dict[str, Any]) -> datetime:
    """Move the built-in sandbox's clock (its admin endpoint takes the client's own token)."""
    client = services.partner_center
    token = await client._tokens.get_token("app")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{client._base_url}/_sandbox/clock", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return datetime.fromisoformat((await response.json())["now"].replace("Z", "+00:00"))


def _cards(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]


async def _message_with(pg: Playground, words: str, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
    for _ in range(10):
        message = await pg.next_bot_message(timeout=timeout)
        cards = _cards(message)
        said = card_text(cards[0]) if cards else str(message.get("text", ""))
        if words in said:
            return message
    raise AssertionError(f"no bot message saying {words!r}")


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_buy_add_seats_move_the_clock_and_read_export_and_search_the_bill(running):
    pg, services = running
    org = await link_demo_customer(services)
    assert org.partner_center_customer_id
    me = await admin(services)

    # Mid-month on the sandbox's clock (the 10th of next month), so a day later is the same month
    # whatever today's date is. Buy 10 seats through the ordering service; the app's job runner places it.
    now = services.clock.now()
    mid_month = (now.replace(day=1) + timedelta(days=32)).replace(day=10, hour=9, minute=0, second=0, microsecond=0)
    await _sandbox_clock(services, {"set": mid_month.isoformat().replace("+00:00", "Z")})
    quote = await services.ordering.quote(me, BASIC, "P1Y:monthly", "10")
    placed = await services.ordering.place_order(me, quote, "e2e-billing-order", notify_conversation_id=None)
    for _ in range(100):
        job = await services.jobs.get(placed.job.id)
        if job is not None and job.status == "succeeded":
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the order did not complete")
    sid = str(job.result["subscription_id"]).lower()  # type: ignore[index]
    bought_on = services.clock.today()

    # A day later on the sandbox's clock: +2 seats.
    moved = await _sandbox_clock(services, {"advance": "P1D"})
    assert moved.month == bought_on.month
    await services.subscriptions.sync(me.organisation_id)
    plan = await services.subscription_changes.plan_quantity(me, sid, "12")
    await services.subscription_changes.change_quantity(me, sid, "12", etag=plan.etag, key="e2e-billing-add")

    # Into the next month: the purchase's month is "last month".
    first_of_next = (moved.replace(day=1) + timedelta(days=32)).replace(day=1, hour=9, minute=0, second=0)
    await _sandbox_clock(services, {"set": first_of_next.isoformat().replace("+00:00", "Z")})
    days = calendar.monthrange(bought_on.year, bought_on.month)[1]
    price = quote.unit_price
    purchase = _money(10 * price * (days - bought_on.day + 1) / days)
    increase = _money(2 * price * (days - moved.day + 1) / days)
    assert quote.currency == "USD"
    total = f"${purchase + increase:,.2f}"

    chat = pg.personal_conversation_id
    await pg.send_text(chat, "billing last month")
    reply = await _message_with(pg, "Pro-rata purchase")
    (card,) = _cards(reply)
    assert_valid_card(card)
    said = card_text(card)
    assert total in said and "Pro-rata increase" in said and quote.product_name in said

    # Export as CSV: the bot sends a single-use link (the Playground has no file consent).
    export = next(action for action in card["actions"] if action["data"].get("format") == "csv")
    await pg.invoke(chat, {"action": {"type": "Action.Execute", **export}}, reply_to_id=reply["messageId"])
    link_message = await _message_with(pg, "The link works")
    url = _cards(link_message)[0]["actions"][0]["url"]
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as download:
            assert download.status == 200
            rows = list(csv.reader(io.StringIO((await download.read()).decode("utf-8-sig"))))
        async with session.get(url) as again:
            assert again.status == 410  # single use
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [(row[3], row[7], row[8], row[12]) for row in rows[1:]] == [
        (sid, "prorata_purchase", "10", f"{purchase:.2f}"),
        (sid, "prorata_increase", "2", f"{increase:.2f}"),
    ]

    # The message extension: the month typed in the compose box lists that bill.
    month = f"{bought_on:%Y-%m}"
    answer = await pg.invoke(
        chat,
        {"commandId": "searchBills", "parameters": [{"name": "query", "value": month}]},
        name="composeExtension/query",
    )
    result = answer["composeExtension"]
    assert result["type"] == "result"
    (hit,) = result["attachments"]
    assert total in hit["preview"]["content"]["title"]
    assert_valid_card(hit["content"])
