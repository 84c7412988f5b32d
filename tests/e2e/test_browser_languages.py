"""The bot in four languages in the rendered Playground (headless Chromium): an admin picks their
language with `language nb-NO` (the Playground itself always sends `locale: en-US`, so the member's
own choice is how another language reaches it here; in Teams the activity's locale does the same),
then opens their subscriptions. The card reads in that language, its amounts and dates in that
locale's format, and no text on it is cut off by the renderer."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from babel import Locale

from dialogs.subscriptions import TITLE as SUBSCRIPTIONS_TITLE
from services import formatting
from services.container import Services
from services.i18n import _
from services.locales import resolve_locale
from services.subscriptions.listing import SubscriptionView
from tests.conftest import link_demo_customer
from tests.e2e.browser import Browser, Chromium
from tests.e2e.playground import SharedPlayground, bot_in_playground
from tests.subscription_fixtures import admin, buy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


# What the subscriptions card says in English, none of which may be left on another language's card.
ENGLISH_ON_THE_CARD = (
    "Your subscriptions",
    "Updated from Microsoft",
    "subscription.",
    "Offer id",
    "Price",
    "Purchased",
    "seats",
    "Active",
    "renews",
    "price locked",
    "Change quantity",
    "Auto-renew",
    "Suspend",
    "Done",
    "per licence",
)


def _plain(text: str) -> str:
    """The page's text and Babel's both with ordinary spaces (CLDR puts no-break spaces in amounts)."""
    return text.replace("\xa0", " ").replace("\u202f", " ")


@pytest_asyncio.fixture(loop_scope="session")
async def chat(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[tuple[Browser, Services]]:
    async with (
        bot_in_playground(session_playground, tmp_path) as (playground, services, _unused),
        chromium.page(playground.base_url, request.node.name) as browser,
    ):
        org = await link_demo_customer(services)
        await buy(services, org, quantity=12)
        await services.subscriptions.sync(org.id)
        yield browser, services


async def test_an_admin_reads_their_subscriptions_in_each_language(chat: tuple[Browser, Services]) -> None:
    """One chat, four languages in turn (one page and one bot: the page load is most of a browser test)."""
    browser, services = chat
    page = await services.subscriptions.page(await admin(services))
    [bought] = page.items
    assert bought.renewal_date is not None
    for tag in ("en-US", "nb-NO", "sv-SE", "de-DE"):
        await _subscriptions_read_in(browser, bought, tag)


async def _subscriptions_read_in(browser: Browser, bought: SubscriptionView, tag: str) -> None:
    locale = resolve_locale(tag)
    language = Locale.parse(locale).get_display_name(locale)
    assert language and bought.renewal_date is not None
    await browser.send(f"language {tag}", expect=language)
    with formatting.reading(locale):
        title = _("Your subscriptions")
        cancelled = _("Cancelled {task}. Nothing more was changed.", task=_(SUBSCRIPTIONS_TITLE))
        seats = _plain(formatting.count(bought.quantity))
        renews = _plain(formatting.date(bought.renewal_date))
        price = (
            _plain(formatting.unit_price(bought.unit_price, bought.currency, bought.billing_cycle))
            if bought.unit_price is not None
            else None
        )
    if tag != "en-US":
        assert title != "Your subscriptions", f"no {locale} translation of the card's title"

    await browser.send("subscriptions", expect=title)
    shown = _plain(await browser.card_text())
    assert bought.name in shown and seats in shown
    assert renews in shown, f"the renewal date as {locale} writes it ({renews!r}) is not on the card:\n{shown}"
    if price is not None:
        assert price in shown, f"the price as {locale} writes it ({price!r}) is not on the card:\n{shown}"
    if tag != "en-US":  # nothing on it left in English (the product's name and offer id are data)
        english = [word for word in ENGLISH_ON_THE_CARD if re.search(rf"(?<!\w){re.escape(word)}(?!\w)", shown)]
        assert not english, f"English on the {locale} card: {english}"
    assert await browser.clipped() == [], f"text cut off on the {locale} card"
    await browser.screenshot(f"subscriptions-{tag}")
    await browser.send("cancel", expect=_plain(cancelled).split(".")[0])  # the task ends in that language too


@pytest_asyncio.fixture(loop_scope="session")
async def newcomer(
    session_playground: SharedPlayground, tmp_path: Path, request: pytest.FixtureRequest, chromium: Chromium
) -> AsyncIterator[Browser]:
    """An admin whose organisation has no tenant yet."""
    async with (
        bot_in_playground(session_playground, tmp_path) as (playground, _services, _unused),
        chromium.page(playground.base_url, request.node.name) as browser,
    ):
        yield browser


async def test_the_tenant_form_reads_german_and_fits(newcomer: Browser) -> None:
    """German runs longest of the four: the busiest card (the tenant form, every label and hint) in it,
    reached by clicking its translated buttons, with nothing cut off."""
    browser = newcomer
    await browser.send("language de-DE", expect="Deutsch (Deutschland)")
    with formatting.reading("de_DE"):
        new_tenant, check = _("Create a new tenant"), _("Check and continue")
    await browser.send("add tenant", expect=new_tenant)
    assert await browser.clipped() == []
    await browser.click(new_tenant, expect=check)
    form = _plain(await browser.card_text())
    english = [word for word in ("Company name", "Country", "Postal code", "required") if word in form]
    assert not english, f"English on the German tenant form: {english}"
    assert await browser.clipped() == [], "text cut off on the German tenant form"
    await browser.screenshot("tenant-form-de-DE")
