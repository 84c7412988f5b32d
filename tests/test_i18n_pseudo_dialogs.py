"""A task's whole conversation in the pseudo-locale: every word the bot says in a dialog — its
replies, its cards, the help and the cancel inside the task — goes through the catalogs.

`tests/test_i18n_pseudo_cards.py` checks each card builder alone; this runs the subscriptions task
through the real bot (list → quantity → a bad quantity → the preview → help → cancel), so text a
dialog makes itself (a title, a notice, a line glued together) cannot stay English unnoticed. The
reader's locale is Greek: its numbers, amounts and dates have no Latin letter, so any Latin letter
left once the data the bot was given is taken out is a string that did not go through `_()`.
"""

from __future__ import annotations

from typing import Any

from cards import subscriptions as cards
from dialogs.billing import BILLING_SHORTCUTS
from services.i18n import pseudo_locale
from services.seed import DEMO_SLUG
from tests.billing.test_billing_bot import _bot as billing_bot
from tests.conftest import message, runtime_of
from tests.fakes import card_of
from tests.subscription_fixtures import buy, prepare_catalog_and_prices
from tests.test_i18n_pseudo_cards import LATIN, TYPED, Data, _texts, _untranslated

LOCALE = "el-GR"
# What a person types, named in the replies as typed (the parser is English).
COMMANDS = {"subscriptions"}


def _leaks(reply: dict[str, Any], data: Data) -> list[str]:
    shown: list[tuple[str, str]] = []
    card = card_of(reply)
    if card is not None:
        shown.extend(_texts(card))
    if reply.get("text"):
        shown.append(("text", str(reply["text"])))
    return [f"{where}: {text!r}" for where, text in shown if LATIN.search(_untranslated(text, data))]


async def test_the_subscriptions_task_says_nothing_outside_the_catalogs(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, monkeypatch
) -> None:
    fake, url = connector
    await prepare_catalog_and_prices(sqlite_services)
    sid = await buy(sqlite_services, sqlite_demo_customer, quantity=10, term="P1Y")
    monkeypatch.setattr("tests.test_i18n_pseudo_cards.TYPED", TYPED | COMMANDS)
    with pseudo_locale():  # set before the app starts, so its turns (and workers) read it too
        client = await make_bot()
        services = runtime_of(client).services
        services.subscriptions.use_clock(sandbox.clock.now)
        page = await services.subscriptions.page(
            await services.access.require_caller(_identity()), page=0, refresh=False
        )
        data = Data()
        names = {item.name for item in page.items} | {item.offer_id for item in page.items}
        data.strings |= names | {sid, sqlite_demo_customer.name, "Alex Wilber", "USD"}

        conversation = "personal-chat-alex"
        replies: list[dict[str, Any]] = []

        async def turn(text: str | None = None, value: dict[str, Any] | None = None) -> dict[str, Any]:
            before = len(fake.messages(conversation))
            response = await client.post(
                "/api/messages", json=message(text, service_url=url, value=value, locale=LOCALE)
            )
            assert response.status == 202
            await fake.wait_for(before + 1, conversation)
            new = fake.messages(conversation)[before:]
            replies.extend(new)
            return new[-1]

        listing = await turn("subscriptions")
        assert card_of(listing) is not None
        await turn(value={"verb": cards.QUANTITY, "subscription_id": sid})
        bad = await turn(value={"verb": cards.PREVIEW, "subscription_id": sid, "quantity": "ten"})
        preview = await turn(value={"verb": cards.PREVIEW, "subscription_id": sid, "quantity": "12"})
        await turn("help")
        cancelled = await turn("cancel")

    assert card_of(bad) is not None and card_of(preview) is not None
    assert cancelled.get("text"), cancelled
    leaks = [leak for reply in replies for leak in _leaks(reply, data)]
    assert leaks == [], "\n".join(leaks)


async def test_the_billing_task_says_nothing_outside_the_catalogs(make_bot, connector, monkeypatch) -> None:
    """The billing chooser, its help (the typed look-ups as typed, with what each shows), a report
    (its title, charge labels and notes) and a cancelled chooser."""
    fake, url = connector
    monkeypatch.setattr("tests.test_i18n_pseudo_cards.TYPED", TYPED | {"billing"})
    with pseudo_locale():
        client = await billing_bot(make_bot)  # 3 seats of Office 365 E3 in the last ended cycle
        organisation = await runtime_of(client).services.organisations.get(DEMO_SLUG)
        data = Data()
        data.strings |= {typed for typed, _what in BILLING_SHORTCUTS} | {organisation.name, "Office 365 E3"}
        conversation = "personal-chat-alex"
        replies: list[dict[str, Any]] = []
        turns: list[tuple[str | None, dict[str, Any] | None]] = [
            ("billing", None),
            ("help", None),
            (None, {"verb": "billing_range", "choice": "last"}),
            ("billing", None),
            ("cancel", None),
        ]
        for text, value in turns:
            before = len(fake.messages(conversation))
            response = await client.post(
                "/api/messages", json=message(text, service_url=url, value=value, locale=LOCALE)
            )
            assert response.status == 202
            await fake.wait_for(before + 1, conversation)
            replies.extend(fake.messages(conversation)[before:])
    assert [card_of(reply) is not None for reply in replies] == [True, True, True, True, False]
    leaks = [leak for reply in replies for leak in _leaks(reply, data)]
    assert leaks == [], "\n".join(leaks)


def _identity() -> Any:
    """Alex, as `tests.conftest.message` sends them by default."""
    from services.access import ChannelIdentity
    from tests.conftest import PLAYGROUND_TENANT_ID

    return ChannelIdentity(PLAYGROUND_TENANT_ID, "00000000-0000-0000-0000-0000000000020", "user-id-0")
