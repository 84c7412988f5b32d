"""Cards read in the caller's Teams locale (`activity.locale`) and their organisation's time zone,
over the real HTTP endpoint: the same subscription listed for nb-NO, de-DE, sv-SE and en-US."""

from __future__ import annotations

import re

import pytest

from services import formatting
from services.i18n import _, ngettext
from services.locales import resolve_locale
from services.models import WarningSettingRow
from tests.fakes import card_of
from tests.fakes import said as _said
from tests.test_subscriptions_bot import _reply, _setup

NBSP = "\u00a0"


@pytest.mark.parametrize(
    ("locale", "price", "date_pattern"),
    [
        ("nb-NO", f"6,00{NBSP}USD", r"\d{1,2}\.\s[a-z]{3}\. 20\d\d"),
        ("de-DE", f"6,00{NBSP}$", r"\d\d\.\d\d\.20\d\d"),
        ("sv-SE", f"6,00{NBSP}US$", r"\d{1,2} [a-z]{3}\. 20\d\d"),
        ("en-US", "$6.00", r"[A-Z][a-z]{2} \d{1,2}, 20\d\d"),
        ("xx-!!", "$6.00", r"[A-Z][a-z]{2} \d{1,2}, 20\d\d"),  # malformed: English
    ],
)
async def test_subscriptions_card_formats_for_the_callers_locale(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, locale, price, date_pattern
):
    fake, url = connector
    client, *_rest = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    listing = await _reply(client, fake, url, "subscriptions", locale=locale)  # cards checked by cardcheck
    said = _said(listing)
    assert card_of(listing) is not None
    with formatting.reading(resolve_locale(locale)):  # the words in the caller's language
        per_licence = _("{price} per licence {period}", price=price, period=formatting.per_period("monthly"))
        seats = ngettext("{n} seat", "{n} seats", 10)
    assert per_licence in said
    assert re.search(date_pattern, said), said  # the renewal date
    assert seats in said
    if not locale.startswith(("en", "xx")):
        assert "per licence per month" not in said and "10 seats" not in said


async def test_times_are_in_the_organisations_time_zone(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    async with sqlite_services.sessions.begin() as session:
        session.add(WarningSettingRow(organisation_id=sqlite_demo_customer.id, timezone="Europe/Oslo"))
    client, *_rest = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    said = _said(await _reply(client, fake, url, "subscriptions", locale="nb-NO"))
    with formatting.reading("nb_NO"):
        updated = _("Updated from Microsoft {datetime_utc}", datetime_utc="").strip()
    assert re.search(rf"{updated} \d{{1,2}}\.\s[a-z]{{3}}\. 20\d\d, \d\d:\d\d Europe/Oslo", said), said
