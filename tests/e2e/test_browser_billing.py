"""Billing in the rendered Playground (headless Chromium), as the customer admin: Alex bought Business
Basic on the 10th of a month on the sandbox's clock, and the clock is now early in the next month, so
that month has an issued bill and this one an open cycle. Every step types in the chat or clicks
what the card renders; any page error from the renderer, or a click without an answer, fails.

In the Playground (no Teams file consent) an export arrives as a card with a single-use download
link: the test clicks **Download** as a person does and reads the file the browser saves."""

from __future__ import annotations

import calendar
import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from openpyxl import load_workbook

from services import formatting
from services.billing.export import CSV_COLUMNS
from services.container import Services
from tests.conftest import link_demo_customer
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import SharedPlayground, bot_in_playground
from tests.e2e.sandbox_admin import sandbox_admin
from tests.subscription_fixtures import BASIC, buy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

PRODUCT = "Microsoft 365 Business Basic"


@dataclass
class Billed:
    browser: Browser
    services: Services
    subscription_id: str
    bought: date  # in last month
    today: date  # early in this month
    downloads: Path

    @property
    def last_month(self) -> str:
        return formatting.month(self.bought)

    @property
    def this_month(self) -> str:
        return formatting.month(self.today)


async def _set_clock(services: Services, moment: datetime) -> None:
    await sandbox_admin(services, "POST", "/clock", {"set": moment.isoformat().replace("+00:00", "Z")})


@pytest_asyncio.fixture(loop_scope="session")
async def billed(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[Billed]:
    async with (
        bot_in_playground(session_playground, tmp_path) as (playground, services, _),
        chromium.page(playground.base_url, request.node.name) as browser,
    ):
        org = await link_demo_customer(services)
        now = services.clock.now()
        bought = (now.replace(day=1) + timedelta(days=32)).replace(day=10, hour=9, minute=0, second=0, microsecond=0)
        await _set_clock(services, bought)
        subscription_id = await buy(services, org, quantity=10)
        await services.subscriptions.sync(org.id)  # the purchase reaches the ledger
        today = (bought.replace(day=1) + timedelta(days=32)).replace(day=3)
        await _set_clock(services, today)
        yield Billed(browser, services, subscription_id, bought.date(), today.date(), tmp_path / "downloads")


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


async def test_the_billing_dialog_picks_months_and_drills_down_in_place(billed: Billed) -> None:
    browser = billed.browser
    await browser.send("billing", expect="Billing report")
    # The months that have bills, preset to last month; labels that are not the buttons' names.
    assert [i["value"] for i in await browser.inputs()] == [billed.last_month, billed.last_month]
    assert (await browser.buttons())[-2:] == ["Last month's bill", "Show these months"]
    await browser.select("From", billed.this_month)
    await browser.select("To", billed.last_month)
    await browser.screenshot("chooser")
    answer = await browser.click("Show these months", expect="must not be after")
    assert any("Billing report" in m["text"] for m in answer)
    assert [i["value"] for i in await browser.inputs()] == [billed.this_month, billed.last_month]  # kept
    await browser.select("From", billed.last_month)
    await browser.select("To", billed.this_month)
    answer = await browser.click("Show these months", expect="open — so far, not final")
    report = next(m["text"] for m in answer if "Bills —" in m["text"])
    span = formatting.month_range(billed.bought, billed.today)
    assert f"Bills — {span}" in report and billed.last_month in report and "issued" in report
    assert PRODUCT not in report  # the cycles are closed until tapped

    # Drill down: tap last month's cycle, then the subscription; each chevron turns with it.
    await browser.tap(billed.last_month)
    opened = await browser.card_text()
    assert PRODUCT in opened and billed.subscription_id in opened and "Pro-rata purchase" not in opened
    cycle_total = next(line for line in opened.splitlines() if line.endswith(" ▾"))
    await browser.tap(PRODUCT)
    detail = await browser.card_text()
    assert "Pro-rata purchase" in detail and "10 × " in detail and cycle_total in detail
    await browser.screenshot("drilled-down")
    assert detail.count(" ▾") == 2 and " ▸" in detail  # this month's cycle is still closed
    await browser.tap(PRODUCT)
    assert "Pro-rata purchase" not in await browser.card_text()
    await browser.tap(billed.last_month)
    closed = await browser.card_text()
    assert PRODUCT not in closed and " ▾" not in closed and cycle_total.replace(" ▾", " ▸") in closed

    # "Last month's bill" in one click; the chooser's record does not claim months were picked.
    await browser.send("billing", expect="Billing report")
    answer = await browser.click("Last month's bill", expect="Bills — last month")
    record = next(m["text"] for m in answer if "✓ Last month's bill" in m["text"])
    assert "From" not in record
    await browser.screenshot("last-month")


async def test_typed_shortcuts_listed_in_help_answer_at_once(billed: Billed) -> None:
    browser = billed.browser
    await browser.send("help", expect="type these to go straight to the result")
    help_text = await browser.card_text()
    for typed in ("billing last month", "billing this month", "billing this year", "what did we spend on"):
        assert typed in help_text
    await browser.screenshot("help")
    answers = {
        "bill last month": "Bills — last month",
        "billing this month": "open — so far, not final",
        f"billing {billed.bought:%B}".lower(): f"Bills — {billed.last_month}",
        f"billing {billed.bought:%Y-%m}..{billed.today:%Y-%m}": formatting.month_range(billed.bought, billed.today),
        "billing this year": f"Bills — {billed.today.year}",
        "what did we spend on business basic": f"Spend on {PRODUCT}",
    }
    for typed, expected in answers.items():
        await browser.send(typed, expect=expected)
    await browser.screenshot("spend")
    await browser.send(f"billing {billed.today.year + 1}-01", expect="is in the future: there is no bill for it yet")


async def test_both_exports_download_through_the_link_the_bot_sends(billed: Billed) -> None:
    browser = billed.browser
    await browser.send("billing last month", expect="Export CSV")
    shown_total = next(line for line in (await browser.card_text()).splitlines() if line.endswith(" ▸"))

    await browser.click("Export CSV", expect=f"billing_{billed.bought:%Y-%m}.csv")
    await browser.screenshot("csv-link")
    csv_file = await browser.download("Download", billed.downloads / "bill.csv")
    assert csv_file["name"] == f"billing_{billed.bought:%Y-%m}.csv"
    rows = list(csv.DictReader(io.StringIO((billed.downloads / "bill.csv").read_text(encoding="utf-8-sig"))))
    assert tuple(rows[0]) == CSV_COLUMNS
    (row,) = rows
    days = calendar.monthrange(billed.bought.year, billed.bought.month)[1]
    expected = _money(10 * Decimal(row["unit_price"]) * (days - billed.bought.day + 1) / days)  # pro rata
    assert (row["subscription_id"], row["offer_id"], row["charge_type"], row["quantity"]) == (
        billed.subscription_id,
        f"{BASIC}:0001",
        "prorata_purchase",
        "10",
    )
    assert (row["days"], row["cycle_days"], row["amount"]) == (
        str(days - billed.bought.day + 1),
        str(days),
        f"{expected}",
    )
    assert shown_total == f"{formatting.money(expected, row['currency'])} ▸"  # the card's total is the file's
    async with aiohttp.ClientSession() as session, session.get(csv_file["url"]) as again:
        assert again.status == 410  # the link worked once

    await browser.click("Export to Excel", expect=f"billing_{billed.bought:%Y-%m}.xlsx")
    xlsx_file = await browser.download("Download", billed.downloads / "bill.xlsx")
    assert xlsx_file["name"] == f"billing_{billed.bought:%Y-%m}.xlsx"
    workbook = load_workbook(billed.downloads / "bill.xlsx")
    sheet = workbook[workbook.sheetnames[1]]
    assert workbook.sheetnames[0] == "Summary" and sheet["A1"].value == "report_date"
    values = [dict(zip(CSV_COLUMNS, r, strict=True)) for r in sheet.iter_rows(min_row=2, values_only=True)]
    assert [(v["subscription_id"], v["charge_type"], v["quantity"]) for v in values] == [
        (billed.subscription_id, "prorata_purchase", 10)
    ]
    assert Decimal(str(values[0]["amount"])) == expected
