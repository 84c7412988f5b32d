"""The "add subscription" dialog over the real HTTP endpoint, with the sandbox: browse, details,
bad input on the same card, a changed price, exactly one order for a double click, a resubmitted
card and a re-delivered activity, the tenant and role rules, and every card schema-checked."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from cards.ordering import (
    Choice,
    ChoiceCardView,
    ConfigureView,
    OrderResultView,
    PlanChoice,
    ProductItem,
    ProductListView,
    QuoteView,
    build_choice_card,
    build_configure_card,
    build_no_tenant_card,
    build_order_result_card,
    build_product_list_card,
    build_quote_card,
)
from dialogs.add_subscription import render_order_job
from services.db import utcnow
from services.jobs import FAILED, JobView
from services.models import Job, LedgerEntry, SubscriptionRow
from services.ordering import UNCONFIRMED_MESSAGE
from services.pricing import GLOBAL_LIST
from tests.cardcheck import assert_valid_activity_cards, assert_valid_card
from tests.conftest import message, runtime_of
from tests.fakes import card_of, card_text, said
from tests.test_ordering import link_without_agreement

APPROVER = {"user_id": "user-id-1", "name": "Megan Bowen", "aad_object_id": "00000000-0000-0000-0000-0000000000021"}


class Chat:
    """One person's chat with the bot: send, wait for the reply, click buttons on the last card."""

    def __init__(self, client: Any, fake: Any, url: str, **who: Any) -> None:
        self.client, self.fake, self.url, self.who = client, fake, url, who
        self.seen = 0

    async def post(self, activity: dict[str, Any]) -> None:
        response = await self.client.post("/api/messages", json=activity)
        assert response.status == 202

    async def _reply(self, expect: int = 1) -> dict[str, Any]:
        self.seen += expect
        await self.fake.wait_for(self.seen)
        reply = self.fake.messages()[self.seen - 1]
        assert_valid_activity_cards(reply)
        return reply

    async def say(self, text: str) -> dict[str, Any]:
        await self.post(message(text, service_url=self.url, **self.who))
        return await self._reply()

    def activity(self, value: dict[str, Any], activity_id: str | None = None) -> dict[str, Any]:
        return message(None, service_url=self.url, value=value, activity_id=activity_id, **self.who)

    async def submit(self, value: dict[str, Any]) -> dict[str, Any]:
        await self.post(self.activity(value))
        return await self._reply()

    async def wait(self) -> dict[str, Any]:
        return await self._reply()


def action(reply: dict[str, Any], title: str) -> dict[str, Any]:
    """The submit data of the button called `title` (anywhere on the card)."""
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Submit" and node.get("title") == title:
                found.append(dict(node["data"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card_of(reply))
    assert found, f"no button {title!r} on: {said(reply)}"
    return found[0]


def choose(reply: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The n-th product's "Choose" button of a product list (each product shows it in both of its
    button rows: with "Show details" and with "Hide details")."""
    buttons: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Submit" and node.get("title") == "Choose" and node["data"] not in buttons:
                buttons.append(dict(node["data"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card_of(reply))
    return buttons[index]


async def _to_quote(chat: Chat, quantity: Any = "5", plan: str = "P1Y:monthly") -> dict[str, Any]:
    """Business → Microsoft 365 → Business Basic → plan and quantity → the price card."""
    categories = await chat.say("add subscription")
    assert "Pick a category" in said(categories)
    groups = await chat.submit(action(categories, "Business"))
    products = await chat.submit(action(groups, "Microsoft 365"))
    assert "Microsoft 365 Business Basic" in said(products)
    configure = await chat.submit(
        next(data for data in (choose(products, i) for i in range(3)) if data["value"] == "CFQ7TTC0LH18:0001")
    )
    assert "Quantity (1–300 licences)" in said(configure)
    return await chat.submit({**action(configure, "Show price"), "plan": plan, "quantity": quantity})


async def _counts(services: Any) -> tuple[int, int, int]:
    async with services.sessions() as session:
        jobs = await session.scalar(select(func.count()).select_from(Job))
        rows = await session.scalar(select(func.count()).select_from(SubscriptionRow))
        ledger = await session.scalar(select(func.count()).select_from(LedgerEntry))
    return int(jobs or 0), int(rows or 0), int(ledger or 0)


async def test_browse_price_and_buy_one_subscription(make_bot, connector, sqlite_demo_customer, sandbox) -> None:
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    chat = Chat(client, fake, url)

    categories = await chat.say("add subscription")
    text = said(categories)
    assert "Add-ons" not in text  # add-ons are bought for a subscription, not here
    groups = await chat.submit(action(categories, "Business"))
    assert {"Microsoft 365", "Teams", "Security"} <= set(said(groups).splitlines())
    assert "product(s)" not in said(groups) and "\n1 product\n" in said(groups), said(groups)
    products = await chat.submit(action(groups, "Microsoft 365"))
    listing = said(products)
    for fact in ("Microsoft 365 Business Basic", "Offer id / item code", "CFQ7TTC0LH18:0001", "1–300 licences",
                 "From $5.52 per licence per month (1-year commitment, billed yearly)",
                 "1-year commitment, billed monthly: $5.52 per licence per month\n",
                 "1-year commitment, billed yearly: $66.24 per licence per year ($5.52 per month)\n",
                 "1-month commitment, billed monthly: $6.62 per licence per month\n",
                 "Show details"):  # fmt: skip
        assert fact in listing, fact
    basic = next(choose(products, i) for i in range(3) if choose(products, i)["value"] == "CFQ7TTC0LH18:0001")
    configure = await chat.submit(basic)
    assert "1-month commitment, billed monthly — $6.62 per licence per month" in said(configure)

    quote = await chat.submit({**action(configure, "Show price"), "plan": "P1Y:monthly", "quantity": "5"})
    shown = said(quote)
    for fact in (
        "Offer id\nCFQ7TTC0LH18:0001\n",
        "Unit price\n$5.52 per licence per month\n",
        "Total per billing period\n$27.60 per month\n",
        "Over the whole term\n$331.20 over the 1-year term\n",
        "Commitment\n1-year commitment, billed monthly\n",
        "Quantity\n5 licences\n",
        "costs start under Microsoft's billing rules",
    ):
        assert fact in shown

    working = await chat.submit(action(quote, "Create subscription"))
    assert "Ordering **Microsoft 365 Business Basic** × 5" in said(working)
    result = await chat.wait()  # the job's follow-up
    done = said(result)
    assert "Subscription created" in done and "Costs now start under Microsoft's billing rules." in done
    assert action(result, "Open subscriptions") == {"verb": "command", "command": "subscriptions"}
    assert "Quantity\n5 licences\n" in done and "Price per billing period\n$27.60 per month\n" in done
    bought = await sandbox.client.subscriptions(sqlite_demo_customer.partner_center_customer_id)
    assert len(bought) == 1 and bought[0].quantity == 5 and bought[0].id in done
    assert "Term ends\nNov 15, 2027\n" in done  # the sandbox is at Nov 16, 2026
    assert await _counts(services) == (1, 1, 1)


@pytest.mark.parametrize("bad", ["0", "-3", "301", "abc", "", "1.e999", "2.5"])
@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_bad_quantities_are_refused_on_the_same_card(make_bot, connector, bad) -> None:
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)
    again = await _to_quote(chat, quantity=bad)
    text = said(again)
    assert "Quantity (1–300 licences)" in text  # the same card, shown again
    assert ("between 1 and 300" in text) or ("whole number" in text) or ("how many" in text)
    assert await _counts(runtime_of(client).services) == (0, 0, 0)
    fixed = await chat.submit({**action(again, "Show price"), "plan": "P1Y:monthly", "quantity": "2"})
    assert "$11.04 per month" in said(fixed)


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_forged_and_stale_submits_buy_nothing(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)
    categories = await chat.say("add subscription")
    groups = await chat.submit(action(categories, "Business"))
    products = await chat.submit(action(groups, "Microsoft 365"))
    token = choose(products)["card"]
    # A product of another group, an add-on, an unknown id: not on this card's list.
    for forged in ("CFQ7TTC0LH0J:0001", "CFQ7TTC0LF8R:0001", "CFQ7TTC0NOPE:0001"):
        products = await chat.submit({"verb": "order_pick", "card": token, "value": forged})
        assert "not offered to your organisation" in said(products)
        token = choose(products)["card"]
    # A button from an older screen, replaced in place by the next one (a double click): ignored.
    await chat.post(chat.activity(action(categories, "Business")))
    assert len(fake.messages()) == chat.seen
    # The same button copied without its card id: refused as out of date, the current screen shown.
    stale = await chat.submit({k: v for k, v in action(categories, "Business").items() if k != "card_id"})
    assert "out of date" in said(stale) and "Microsoft 365 Business Basic" in said(stale)
    # A forged plan at the configure step.
    basic = next(choose(stale, i) for i in range(3) if choose(stale, i)["value"].startswith("CFQ7TTC0LH18"))
    configure = await chat.submit(basic)
    refused = await chat.submit({**action(configure, "Show price"), "plan": "P1M:triennial", "quantity": "1"})
    assert "Pick a term and billing frequency offered" in said(refused)
    assert await _counts(runtime_of(client).services) == (0, 0, 0)


async def test_double_click_resubmit_and_redelivery_make_one_order(
    make_bot, connector, sqlite_demo_customer, sandbox
) -> None:
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    chat = Chat(client, fake, url)
    quote = await _to_quote(chat, quantity="3")
    create = action(quote, "Create subscription")

    # Double click: two submits of the same card at once.
    await asyncio.gather(chat.post(chat.activity(create)), chat.post(chat.activity(create)))
    # Teams re-delivers an activity (same id: dropped, no answer) and the user resubmits the card later.
    redelivered = chat.activity(create, activity_id="same-activity")
    await chat.post(redelivered)
    await chat.post(chat.activity(create, activity_id="same-activity"))
    await chat.post(chat.activity(create))
    await fake.wait_for(chat.seen + 5)  # 4 answers + the job's follow-up
    texts = [said(item) for item in fake.messages()[chat.seen :]]
    assert len(texts) == 5, texts
    assert sum("Ordering **Microsoft 365 Business Basic**" in text for text in texts) == 1
    assert sum("Subscription created" in text for text in texts) == 1
    assert sum("already done from this card" in text for text in texts) == 3, texts
    assert len(await sandbox.client.subscriptions(sqlite_demo_customer.partner_center_customer_id)) == 1
    assert await _counts(services) == (1, 1, 1)


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_a_price_changed_after_display_is_shown_and_confirmed_again(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    chat = Chat(client, fake, url)
    quote = await _to_quote(chat, quantity="2")
    await services.pricing.import_csv(
        GLOBAL_LIST,
        "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
        f"CFQ7TTC0LH18,0001,P1Y,monthly,USD,6.10,{services.clock.today().isoformat()},\n",
        actor="op",
    )
    again = await chat.submit(action(quote, "Create subscription"))
    text = said(again)
    assert "The price changed" in text and "$12.20 per month" in text
    assert await _counts(services) == (0, 0, 0)
    await chat.submit(action(again, "Create subscription"))
    await chat.wait()
    jobs, rows, ledger = await _counts(services)
    assert (jobs, rows, ledger) == (1, 1, 1)
    async with services.sessions() as session:
        entry = await session.scalar(select(LedgerEntry))
    price = await services.pricing.entry(entry.price_entry_id)  # type: ignore[union-attr]
    assert price is not None and price.amount == Decimal("6.10")


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_back_change_and_cancel(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)
    quote = await _to_quote(chat, quantity="4")
    configure = await chat.submit(action(quote, "Change"))
    assert "Quantity (1–300 licences)" in said(configure)
    products = await chat.submit(action(configure, "Back"))
    assert "Business › Microsoft 365" in said(products)
    cancelled = await chat.submit(action(products, "Cancel"))
    assert "Nothing was ordered" in said(cancelled)
    assert await _counts(runtime_of(client).services) == (0, 0, 0)


async def test_without_a_tenant_the_card_points_to_add_tenant(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url)
    reply = await chat.say("add subscription")
    assert "add tenant" in said(reply).lower() and action(reply, "Add tenant") == {
        "verb": "command",
        "command": "add tenant",
    }


async def test_without_the_customer_agreement_the_card_points_to_add_tenant(
    make_bot, connector, sqlite_services
) -> None:
    fake, url = connector
    client = await make_bot()
    await link_without_agreement(sqlite_services)
    chat = Chat(client, fake, url)
    reply = await chat.say("add subscription")
    text = said(reply)
    assert "First, the Microsoft Customer Agreement" in text and "Pick a category" not in text
    assert action(reply, "Add tenant") == {"verb": "command", "command": "add tenant"}
    assert await _counts(runtime_of(client).services) == (0, 0, 0)


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_it_is_on_the_admins_menu_and_not_on_an_approvers(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    admin = Chat(client, fake, url)
    admin_menu = said(await admin.say("menu"))
    assert "add subscription" in admin_menu and "Buy a Microsoft 365 subscription" in admin_menu
    approver = Chat(client, fake, url, **APPROVER)
    approver.seen = admin.seen
    approver_menu = said(await approver.say("menu"))
    assert "What would you like to do?" in approver_menu and "add subscription" not in approver_menu


@pytest.mark.usefixtures("sqlite_demo_customer")
async def test_only_admins_can_start_it(make_bot, connector) -> None:
    fake, url = connector
    client = await make_bot()
    chat = Chat(client, fake, url, **APPROVER)
    reply = await chat.say("add subscription")
    assert "does not allow" in said(reply)


def test_the_order_outcome_never_says_not_placed_for_a_bought_order() -> None:
    def failed(message: str) -> JobView:
        return JobView(1, "order_subscription", FAILED, 1, "a", {}, None, message, 1, "c", utcnow(), utcnow())

    unconfirmed = render_order_job(failed(UNCONFIRMED_MESSAGE)).text or ""
    assert "not placed" not in unconfirmed and "do not order again" in unconfirmed
    refused = render_order_job(failed("Microsoft refused the order: x. Nothing was bought.")).text or ""
    assert refused.startswith("Your order was not placed: Microsoft refused")


def test_every_ordering_card_is_valid() -> None:
    assert_valid_card(build_choice_card(ChoiceCardView("T", "Pick", [Choice("a", "A", "x")], "tok", "err", True)))
    items = [
        ProductItem(f"CFQ7TTC0{i:04d}:0001", f"P{i}", "Text " * 60, "From USD 1.00", ["1 year: USD 1.00"], "1–300")
        for i in range(8)
    ]
    listing = build_product_list_card(ProductListView("Business", "Microsoft 365", items, "tok", 0, 3, "err"))
    assert_valid_card(listing)
    assert "More products" in card_text(listing)
    plans = [PlanChoice("P1Y:monthly", "1 year")]
    configure = ConfigureView("P", "X:1", plans, "P1Y:monthly", "abc", 1, 300, "tok", "bad", "quantity")
    assert_valid_card(build_configure_card(configure))
    assert_valid_card(build_quote_card(QuoteView("P", "X:1", "1 year", 1, "u", "t", "tt", "tok", "changed")))
    assert_valid_card(build_order_result_card(OrderResultView("P", 1, "sid", "Active", "1 year", "USD 1.00", "")))
    assert_valid_card(build_no_tenant_card("No tenant"))
    assert_valid_card(build_no_tenant_card("No agreement", title="First, the Microsoft Customer Agreement"))
