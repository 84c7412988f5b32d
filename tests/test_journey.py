"""One customer admin's journey through the whole app — the real HTTP endpoint (`make_bot` + the fake
Teams connector), the real services, job runner and Partner Center client, the built-in sandbox — to
prove the features work together, not only each alone:

the demo admin adds a new tenant (the job completes and the password is only e-mailed), buys a
subscription (priced from the demo price list, ordered once), sees it under `subscriptions`, creates a
user and assigns them a licence from it (Microsoft's counts follow), and reads `billing` (the purchase
rated pro rata from the ledger at the price shown when buying).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from services.ledger import LedgerEvent
from services.models import SubscriptionRow
from services.seed import DEMO_SLUG
from tests.chat import Chat, button, inputs, walk
from tests.conftest import SANDBOX_START, outbox_messages, runtime_of
from tests.fakes import card_of, card_text, said

DOMAIN = "contosodemo.onmicrosoft.com"
BASIC_OFFER = "CFQ7TTC0LH18:0001"  # Microsoft 365 Business Basic in the sandbox catalog
SEATS = 5
MONTHLY_PRICE = Decimal("5.52")  # the demo price list: 1 year commitment, billed monthly, per seat


def choice_value(card: dict[str, Any], input_id: str, title_part: str) -> str:
    (choices,) = [n["choices"] for n in walk(card) if n.get("id") == input_id]
    return next(str(c["value"]) for c in choices if title_part in str(c["title"]))


async def test_the_demo_admin_sets_up_a_tenant_buys_assigns_and_reads_the_bill(
    make_bot, connector, sandbox, outbox, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.INFO, logger="aiosqlite")  # as configure_logging keeps it
    fake, url = connector
    client = await make_bot()
    services = runtime_of(client).services
    chat = Chat(client, fake, url)
    org = await services.organisations.get(DEMO_SLUG)
    assert org.partner_center_customer_id is None  # a fresh demo organisation: no tenant yet

    # 1. Add a new tenant: the prefilled form, the confirmation with the agreement, the job's follow-up.
    start = await chat.card("add tenant")
    form = await chat.card(value=button(start, "Create a new tenant"))
    assert inputs(form)["domain_prefix"] == "contosodemo"
    confirm = await chat.card(value={**inputs(form), **button(form, "Check and continue")})
    assert DOMAIN in card_text(confirm) and "Microsoft Customer Agreement" in card_text(confirm)
    working, ready, categories = await chat.send(
        value={**inputs(confirm), **button(confirm, "Create the tenant"), "mca_accept": "true"}, replies=3
    )
    assert "Working on it" in said(working)
    assert "Your Microsoft 365 tenant is ready" in said(ready)
    categories = card_of(categories)  # the bot moved straight on to "add subscription"
    org = await services.organisations.get(DEMO_SLUG)
    customer = org.partner_center_customer_id
    assert customer is not None and (await sandbox.client.get_customer(customer)).company_profile.domain == DOMAIN
    [tenant_mail] = outbox_messages(outbox)
    assert tenant_mail["To"] == org.contact_email

    # 2. Buy Microsoft 365 Business Basic, 5 seats, 1 year billed monthly, at the demo list's price.
    groups = await chat.card(value=button(categories, "Business"))
    products = await chat.card(value=button(groups, "Microsoft 365"))
    basic = next(
        n["data"]
        for n in walk(products)
        if n.get("type") == "Action.Submit" and n.get("title") == "Choose" and n["data"].get("value") == BASIC_OFFER
    )
    configure = await chat.card(value=dict(basic))
    quote = await chat.card(value={**button(configure, "Show price"), "plan": "P1Y:monthly", "quantity": str(SEATS)})
    monthly = MONTHLY_PRICE * SEATS
    # One money format, one offer id, in buying, the list and the bill.
    unit_price = f"${MONTHLY_PRICE} per licence per month"
    assert unit_price in card_text(quote) and f"${monthly} per month" in card_text(quote)
    assert f"Offer id\n{BASIC_OFFER}\n" in card_text(quote)
    ordering, result = await chat.send(value=button(quote, "Create subscription"), replies=2)
    assert f"Microsoft 365 Business Basic** × {SEATS}" in said(ordering)
    assert "Subscription created" in said(result)
    [bought] = await sandbox.client.subscriptions(customer)
    assert bought.quantity == SEATS and bought.offer_id.startswith(BASIC_OFFER) and bought.id in said(result)
    [purchase] = await services.ledger.entries(org.id, subscription_id=bought.id)
    assert purchase.event_type == LedgerEvent.PURCHASE and (purchase.quantity_before, purchase.quantity_after) == (
        0,
        SEATS,
    )
    assert purchase.effective_at == SANDBOX_START  # Microsoft's time of the purchase (the sandbox clock)

    # 3. It is under "subscriptions", with its seats and price.
    subscriptions = await chat.card("subscriptions")
    listing = card_text(subscriptions)
    assert "Microsoft 365 Business Basic" in listing and f"{SEATS} seats" in listing and "0 assigned" in listing
    assert f"Price\n{unit_price}\n" in listing and f"Offer id\n{BASIC_OFFER}\n" in listing
    await chat.send(value=button(subscriptions, "Done"))

    # 4. A new user (password e-mailed only), then a licence from the new subscription's pool.
    new_user = await chat.card("new user")
    details = {
        "first_name": "Kim",
        "last_name": "Lee",
        "display_name": "Kim Lee",
        "user_name": "kim.lee",
        "domain": DOMAIN,
        "usage_location": "US",
        "password_email": "kim@example.com",
    }
    created = await chat.card(value={**inputs(new_user), **button(new_user, "Create user"), **details})
    assert f"kim.lee@{DOMAIN}" in card_text(created) and "e-mailed to kim@example.com" in card_text(created)
    assign = await chat.card(value=button(created, "Assign a licence"))
    assert f"{SEATS} available of {SEATS} (0 assigned)" in card_text(assign)
    kim = choice_value(assign, "user_ids", "Kim Lee")
    licence = choice_value(assign, "licence", "Business Basic")
    done = await chat.card(value={**button(assign, "Assign"), "user_ids": kim, "licence": licence})
    assert "✔ Kim Lee: assigned" in card_text(done)
    async with services.sessions() as session:
        licence_sku = await session.scalar(
            select(SubscriptionRow.licence_sku_id).where(SubscriptionRow.id == bought.id)
        )
    assert licence_sku
    [pool] = [
        sku for sku in await services.partner_center.subscribed_skus(customer) if sku.product_sku.id == licence_sku
    ]
    assert (pool.active_units, pool.consumed_units, pool.available_units) == (SEATS, 1, SEATS - 1)
    users = await chat.card(value=button(done, "Back to users"))
    assert "Kim Lee" in card_text(users) and "1 licence" in card_text(users)
    await chat.send(value=button(users, "Done"))
    subscriptions = await chat.card("subscriptions")
    assert "1 assigned" in card_text(subscriptions)
    await chat.send(value=button(subscriptions, "Done"))

    # 5. The bill for the month of the purchase: the seats pro rata from the purchase day to the cycle
    #    end at the price shown when buying, from the ledger.
    month = f"{SANDBOX_START:%Y-%m}"
    bill = said((await chat.send(f"billing {month}"))[0])
    days_left, days_in_cycle = 30 - SANDBOX_START.day + 1, 30  # November
    expected = (SEATS * MONTHLY_PRICE * days_left / days_in_cycle).quantize(Decimal("0.01"))
    assert "Microsoft 365 Business Basic" in bill and "Pro-rata purchase" in bill
    assert bought.id in bill and f"{SEATS} × ${MONTHLY_PRICE}" in bill and f"{days_left}/{days_in_cycle} days" in bill
    assert f"${expected}" in bill and expected == Decimal("13.80")

    # Secrets: the two passwords went by mail, never into a chat message or a log line.
    passwords = [
        part.split()[0]
        for mail in outbox_messages(outbox)
        for part in str(mail.get_body(preferencelist=("plain",)).get_content()).split("assword: ")[1:]
    ]
    assert len(passwords) == 2 and all(len(p) >= 8 for p in passwords)
    for password in passwords:
        assert all(password not in str(item.activity) for item in fake.received)
        assert password not in caplog.text
