"""Months typed, chosen, searched or carried by an export card: a year outside 1900–2199 gets the same
clear message as `2026-13`; a month before the organisation's first subscription is never shown as an
issued bill ("there was no service then"); nothing is issued for it, and no ERROR line is logged."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from services.models import BillingExportRow, BillingReportRow
from tests.billing.test_billing_bot import LAST, _bot, _invoke, _say
from tests.conftest import runtime_of
from tests.fakes import card_of, card_text, said

NOT_A_MONTH = "is not a month; write it like 2026-09"
THIS_YEAR = datetime.now(UTC).year


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]


async def _stored_cycle_years(client) -> set[int]:
    async with runtime_of(client).services.sessions() as session:
        return {end.year for end in (await session.scalars(select(BillingReportRow.cycle_end))).all()}


@pytest.mark.parametrize(
    "typed",
    [
        "billing 0000-01",
        "billing 9999-12",
        "billing 1899-12",
        "billing 2200-01",
        "billing sep 0000",
        "billing 2026-01..9999-12",
        "billing 0000-01..2026-01",
        "billing 2026-13",
    ],
)
async def test_a_year_outside_the_sane_range_reads_like_a_bad_month(make_bot, connector, caplog, typed) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    with caplog.at_level(logging.INFO):
        reply = await _say(client, fake, typed, url, 1)
    assert NOT_A_MONTH in said(reply)
    assert _errors(caplog) == []
    assert await _stored_cycle_years(client) == set()


async def test_the_chooser_refuses_year_zero_and_keeps_waiting(make_bot, connector, caplog) -> None:
    fake, url = connector
    client = await _bot(make_bot)
    await _say(client, fake, "billing", url, 1)
    with caplog.at_level(logging.INFO):
        bad = {"verb": "billing_range", "choice": "range", "first_month": "0000-01", "last_month": "9999-12"}
        again = card_of(await _say(client, fake, None, url, 2, value=bad))
    assert again is not None and NOT_A_MONTH in card_text(again)
    good = {"verb": "billing_range", "choice": "range", "first_month": f"{LAST.end:%Y-%m}", "last_month": ""}
    report = card_of(await _say(client, fake, None, url, 3, value=good))
    assert report is not None and "€90.00" in card_text(report)  # the chooser was still waiting
    assert _errors(caplog) == []


@pytest.mark.parametrize("query", ["0000-01", "2026-01..9999-12", "sep 0000"])
async def test_the_message_extension_refuses_year_zero_with_a_message(make_bot, connector, caplog, query) -> None:
    _, url = connector
    client = await _bot(make_bot)
    with caplog.at_level(logging.INFO):
        body = await _invoke(
            client,
            url,
            "composeExtension/query",
            {"commandId": "searchBills", "parameters": [{"name": "query", "value": query}]},
        )
    assert body["composeExtension"]["type"] == "message" and NOT_A_MONTH in body["composeExtension"]["text"]
    assert _errors(caplog) == []


@pytest.mark.parametrize("month", ["0000-01", "9999-12", "99999999-01", "2026-13", 202601, None])
async def test_an_export_card_carrying_a_bad_month_is_out_of_date(make_bot, connector, caplog, month) -> None:
    _, url = connector
    client = await _bot(make_bot)
    data = {"verb": "billing_export", "format": "csv", "first_month": month, "last_month": f"{LAST.end:%Y-%m}"}
    with caplog.at_level(logging.INFO):
        action = {"action": {"type": "Action.Execute", "verb": "billing_export", "data": data}}
        body = await _invoke(client, url, "adaptiveCard/action", action)
    assert "That export is not valid any more" in body["value"]
    assert _errors(caplog) == []
    async with runtime_of(client).services.sessions() as session:
        assert (await session.scalars(select(BillingExportRow))).all() == []  # no link was made


async def test_a_month_before_the_first_subscription_is_no_service_not_an_issued_bill(
    make_bot, connector, caplog
) -> None:
    fake, url = connector
    client = await _bot(make_bot)  # the first purchase: the first day of the last ended cycle
    with caplog.at_level(logging.INFO):
        before = await _say(client, fake, "billing 1999-01", url, 1)
        year = card_of(await _say(client, fake, "billing this year", url, 2))
        chooser = await _say(client, fake, "billing", url, 3)
        early = {"verb": "billing_range", "choice": "range", "first_month": "1999-01", "last_month": "1999-03"}
        chosen = card_of(await _say(client, fake, None, url, 4, value=early))
    assert "There was no service in January 1999" in said(before)
    assert f"began on {LAST.start.day} {LAST.start:%B %Y}" in said(before)
    assert "issued" not in said(before)
    assert year is not None and "€90.00" in card_text(year)
    if LAST.start.month > 1 and LAST.start.year == THIS_YEAR:
        assert f"No service before {LAST.end:%B %Y}" in card_text(year)
        assert f"January {THIS_YEAR}" not in card_text(year)
    assert chooser is not None
    assert chosen is not None and "There was no service in January 1999 to March 1999" in card_text(chosen)
    assert await _stored_cycle_years(client) <= {LAST.end.year}  # nothing issued for 1999
    assert _errors(caplog) == []


async def test_an_over_long_message_extension_query_is_refused_with_a_message(make_bot, connector, caplog) -> None:
    _, url = connector
    client = await _bot(make_bot)
    query = {"commandId": "searchBills", "parameters": [{"name": "query", "value": "e3 " * 400}]}
    with caplog.at_level(logging.INFO):
        body = await _invoke(client, url, "composeExtension/query", query)
    assert body["composeExtension"]["type"] == "message"
    assert "at most 200 characters" in body["composeExtension"]["text"]
    assert _errors(caplog) == []
