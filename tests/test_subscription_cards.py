"""Every card of the subscriptions task and the approval card: Adaptive Card 1.5 schema, Teams size,
and the facts each shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cards.approvals import ApprovalCardView, build_approval_card
from cards.subscriptions import (
    build_addons_card,
    build_autorenew_card,
    build_cancel_card,
    build_quantity_card,
    build_quantity_preview_card,
    build_reactivate_card,
    build_subscriptions_card,
    build_suspend_request_card,
)
from services import formatting
from services.price_rules import PriceScope, UnitPrice
from services.subscriptions import AddonOffer, CancelPlan, QuantityPlan, SubscriptionPage, SubscriptionView
from services.subscriptions.common import ProRata
from tests.cardcheck import assert_valid_card
from tests.fakes import card_text

WHEN = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
WHEN_SHOWN = "Nov 16, 2026, 9:00\u202fAM UTC"  # CLDR puts a narrow no-break space before AM/PM
RENEWAL = datetime(2027, 11, 15, tzinfo=UTC)


def _view(**changes) -> SubscriptionView:
    values = dict(
        id="sub-1",
        name="Microsoft 365 Business Basic",
        offer_id="CFQ7TTC0LH18:0001",
        product_id="CFQ7TTC0LH18",
        sku_id="0001",
        parent_id=None,
        quantity=10,
        status="active",
        term_duration="P1Y",
        billing_cycle="monthly",
        auto_renew=True,
        renewal_date=RENEWAL,
        cancellation_until=WHEN,
        scheduled_quantity=None,
        refundable=10,
        licence_sku_id="lic",
        consumed=3,
        shared_with=1,
        unit_price=Decimal("6.00"),
        currency="USD",
    )
    values.update(changes)
    return SubscriptionView(**values)


def _page(items, **changes) -> SubscriptionPage:
    values = dict(
        items=tuple(items),
        page=0,
        pages=1,
        total=len(items),
        synced_at=WHEN,
        has_tenant=True,
        can_manage=True,
        can_request_suspension=True,
    )
    values.update(changes)
    return SubscriptionPage(**values)


def test_the_list_shows_every_column_and_row_actions():
    addon = _view(
        id="sub-2", name="Exchange Online Archiving", parent_id="sub-1", licence_sku_id="", consumed=None, shared_with=0
    )
    single = _view(
        id="sub-3", status="suspended", quantity=1, shared_with=2, unit_price=Decimal("1360"), currency="JPY"
    )
    card = build_subscriptions_card(_page([_view(addons=(addon,)), single], pages=3))
    assert_valid_card(card)
    said = card_text(card)
    for fact in (
        f"Updated from Microsoft {WHEN_SHOWN}. 2 subscriptions.",
        "Offer id\nCFQ7TTC0LH18:0001\n",
        "Price\n$6.00 per licence per month\n",
        "Price\n¥1,360 per licence per month\n",
        "Purchased\n10 seats\n",
        "Purchased\n1 seat\n",
        "3 assigned — shared with 1 other subscription of this licence product",
        "3 assigned — shared with 2 other subscriptions of this licence product",
        "1 year, billed monthly",
        "Nov 15, 2027 (renews; price locked until then)",
        "Add-on: Exchange Online Archiving",
        "Reactivate",
        "Suspend",
        "Next ▶",
        "Suspended",
    ):
        assert fact in said, fact


def test_a_reader_sees_no_change_buttons_and_many_rows_stay_under_the_size_limit():
    card = build_subscriptions_card(
        _page([_view(id=f"s{i}") for i in range(5)], can_manage=False, can_request_suspension=False)
    )
    assert_valid_card(card)
    assert "Change quantity" not in card_text(card) and "Suspend" not in card_text(card)


def _plan(kind: str, **changes) -> QuantityPlan:
    values = dict(
        subscription_id="sub-1",
        name="Basic",
        current=10,
        new=12,
        kind=kind,
        etag="e",
        currency="USD",
        unit_price=Decimal("6.00"),
        charge_now=ProRata(2, Decimal("6.00"), 15, 30, Decimal("6.00")),
        recurring_now=Decimal("60.00"),
        recurring_new=Decimal("72.00"),
        billing_cycle="monthly",
        refundable=10,
        refundable_until=WHEN,
        renewal_date=RENEWAL,
        assigned=None,
    )
    values.update(changes)
    return QuantityPlan(**values)


@pytest.mark.parametrize("kind", ["increase", "decrease", "schedule"])
def test_quantity_cards(kind):
    plan = _plan(kind, explanation="you can remove up to 2 seats until Nov 23, 2026" if kind == "schedule" else "")
    card = build_quantity_preview_card(plan, "key")
    assert_valid_card(card)
    said = card_text(card)
    assert "New cost per month\n$72.00" in said or kind == "schedule"
    if kind == "schedule":
        assert "you can remove up to 2 seats" in said and "Schedule 12 seats for the renewal" in said
        assert "Renewal\nNov 15, 2027\nFrom the renewal\n$72.00 per month" in said
    else:
        assert "$6.00 (2 × $6.00 × 15/30 days)" in said and "Now per month\n$60.00" in said
        assert ("Add 2 seats" if kind == "increase" else "Remove 2 seats") in said
    if kind == "decrease":
        assert f"Removable until\n10 seats until {WHEN_SHOWN}" in said
    one = card_text(build_quantity_preview_card(_plan("decrease", new=9, refundable=1), "key"))
    assert "Basic: 10 → 9 seats" in one and "Remove 1 seat\n" in one and "\n1 seat until" in one
    form = build_quantity_card(_view(), entered="abc", error="Enter a whole number")
    assert_valid_card(form)
    assert "Enter a whole number" in card_text(form)


def test_a_charge_made_of_several_bill_lines_shows_only_the_amount():
    """Seats charged at two prices (or a JPY amount) are not one `seats × price × days` formula: the
    card shows the bill's amount, in the currency's minor unit, and no formula that would not add up."""
    plan = _plan("decrease", new=7, charge_now=ProRata(3, Decimal("6.00"), 5, 31, Decimal("-2.61"), mixed=True))
    card = build_quantity_preview_card(plan, "key")
    assert_valid_card(card)
    assert "Refunded now (pro rata)\n$2.61\n" in card_text(card) and "× 5/31" not in card_text(card)
    yen = _plan("increase", currency="JPY", charge_now=ProRata(2, Decimal("700"), 5, 31, Decimal("226")))
    assert "¥226 (2 × ¥700 × 5/31 days)" in card_text(build_quantity_preview_card(yen, "key"))
    kwd = _plan("increase", currency="KWD", charge_now=ProRata(2, Decimal("2.5"), 5, 31, Decimal("0.806")))
    assert "KWD\u00a00.806 (2 × KWD\u00a02.500 × 5/31 days)" in card_text(build_quantity_preview_card(kwd, "key"))


def test_addons_cancel_autorenew_suspend_reactivate_cards():
    price = UnitPrice(
        1, PriceScope.GLOBAL, "CFQ7TTC0LH0J", "0001", "P1Y", "monthly", "USD", Decimal("3.00"), WHEN.date()
    )
    offers = [
        AddonOffer("CFQ7TTC0LH0J", "0001", "Exchange Online Archiving", "Archive", 1, 100000, "P1Y", "monthly", price),
        AddonOffer("X", "0001", "Unpriced", "", 1, 10, "P1M", "monthly", None),
    ]
    addons = build_addons_card(_view(), offers, "k", error="Choose between 1 and 300")
    cancel = build_cancel_card(
        CancelPlan("sub-1", "Basic", 4, "e", "USD", ProRata(4, Decimal(6), 15, 30, Decimal("-12.00")), WHEN), "k"
    )
    for built, expected in (
        (addons, "Price\n$3.00 per licence per month\n"),
        (addons, "Quantity\n1–100,000\n"),
        (
            build_subscriptions_card(_page([_view(scheduled_quantity=3)])),
            "Nov 15, 2027 (renews with 3 seats, as scheduled; price",
        ),
        (cancel, "Refund\n$12.00 (4 × $6.00 × 15/30 days)\n"),
        (cancel, f"Cancellation possible until\n{WHEN_SHOWN}"),
        (build_autorenew_card(_view(), "k"), "ends on Nov 15, 2027 and"),
        (build_autorenew_card(_view(auto_renew=False), "k"), "renews on Nov 15, 2027 for"),
        (build_suspend_request_card(_view(), entered="x", error="Say why"), "approver"),
        (build_reactivate_card(_view(status="suspended"), "k"), "Reactivate"),
    ):
        assert_valid_card(built)
        assert expected in card_text(built), expected
    assert "no price set" in card_text(addons)


@pytest.mark.parametrize(
    ("status", "expected", "buttons"),
    [
        ("pending", f"Waiting for an approver (expires {WHEN_SHOWN})", ["Approve", "Reject"]),
        ("suspending", "Approved by Megan Bowen (Nov 16, 2026, 2:03\u202fPM UTC) — suspending", []),
        ("suspended", "Approved by Megan Bowen (Nov 16, 2026, 2:03\u202fPM UTC) — suspended", []),
        ("failed", "failed: Microsoft is busy.", ["Retry"]),
        ("rejected", "Rejected by Megan Bowen (Nov 16, 2026, 2:03\u202fPM UTC) — nothing was changed", []),
        ("expired", f"Expired {WHEN_SHOWN} — nothing was changed", []),
    ],
)
def test_the_approval_card_in_each_state(status, expected, buttons):
    view = ApprovalCardView(
        approval_id=7,
        subscription_name="Basic",
        requester_name="Alex Wilber",
        reason="Paused",
        requested_at=WHEN,
        expires_at=WHEN,
        status=status,
        decider_name="Megan Bowen",
        decided_at=datetime(2026, 11, 16, 14, 3, tzinfo=UTC),
        outcome="Microsoft is busy.",
        approver_user_ids=["user-id-1"],
        approver_names=["Megan Bowen", "Patti Fernandez"],
    )
    for_approver = build_approval_card(view, for_approver=True)
    everyone = build_approval_card(view, for_approver=False)
    channel = build_approval_card(view, for_approver=False, in_channel=True)
    for built in (for_approver, everyone, channel):
        assert_valid_card(built)
        assert expected in card_text(built) and built["refresh"]["userIds"] == ["user-id-1"]
        assert f"Asked at\n{WHEN_SHOWN}" in card_text(built)
        assert built["refresh"]["action"]["verb"] == "approval_refresh"
    assert [a["title"] for a in for_approver.get("actions", [])] == buttons
    assert "actions" not in everyone
    # Everyone in the approvals channel sees the buttons (not every client refreshes per person) and
    # who may use them.
    assert [a["title"] for a in channel.get("actions", [])] == buttons
    assert ("Only Megan Bowen or Patti Fernandez can decide." in card_text(channel)) == bool(buttons)


def test_the_quantity_card_says_what_can_still_be_removed_and_until_when():
    one = build_quantity_card(_view(refundable=2, refundable_batches=((2, WHEN),)))
    assert_valid_card(one)
    shown = formatting.datetime_utc(WHEN)
    assert f"You can remove up to 2 seats with a refund (until {shown})" in card_text(one)
    later = WHEN + timedelta(days=2)
    two = card_text(build_quantity_card(_view(refundable=3, refundable_batches=((1, WHEN), (2, later)))))
    assert f"up to 3 seats with a refund (1 until {shown}, 2 until {formatting.datetime_utc(later)})" in two
    single = card_text(build_quantity_card(_view(refundable=1, refundable_batches=((1, WHEN),))))
    assert "You can remove up to 1 seat with a refund" in single
    none = card_text(build_quantity_card(_view(refundable=0, refundable_batches=())))
    assert "No seat can be removed now" in none and f"renewal on {formatting.date(RENEWAL)}" in none
