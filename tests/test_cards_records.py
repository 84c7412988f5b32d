"""A used card becomes a read-only record: same text, inputs as submitted, nothing left to click."""

from __future__ import annotations

from cards import users as ui
from cards.billing import RANGE_VERB, RangeChoiceView, build_range_card
from cards.records import CARD_ID_KEY, build_record, clicked_action, stamp
from cards.subscriptions import build_suspend_request_card
from cards.tenant import build_tenant_confirm_card
from services.users.licences import PoolView
from services.users.service import NewUserDefaults, UserRow
from tests.cardcheck import assert_valid_card
from tests.chat import walk
from tests.fakes import card_text
from tests.test_cards_tenant import FORM
from tests.test_subscription_cards import _view


def _submits(node: object) -> list[dict]:
    found: list[dict] = []
    if isinstance(node, dict):
        if str(node.get("type", "")).startswith("Action."):
            found.append(node)
        for value in node.values():
            found.extend(_submits(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_submits(item))
    return found


def test_stamp_marks_every_submit_and_leaves_the_original_alone() -> None:
    card = build_suspend_request_card(_view(), entered="", error="")
    stamped = stamp(card, "abc123")
    assert all(action["data"][CARD_ID_KEY] == "abc123" for action in _submits(stamped))
    assert all(CARD_ID_KEY not in (action.get("data") or {}) for action in _submits(card))
    assert_valid_card(stamped)


def test_the_clicked_button_is_the_one_whose_data_the_submit_carries() -> None:
    card = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [],
        "actions": [
            {"type": "Action.Submit", "title": "Choose", "data": {"verb": "pick", "value": "A"}},
            {"type": "Action.Submit", "title": "Choose B", "data": {"verb": "pick", "value": "B"}},
            {"type": "Action.Submit", "title": "Back", "data": {"verb": "back"}},
        ],
    }
    assert clicked_action(card, {"verb": "pick", "value": "B", "typed": "x"})["title"] == "Choose B"
    assert clicked_action(card, {"verb": "back"})["title"] == "Back"
    assert clicked_action(card, {"verb": "unknown"}) is None


def test_a_record_keeps_the_text_shows_what_was_entered_and_has_nothing_to_click() -> None:
    card = build_suspend_request_card(_view(), entered="", error="")
    reason_id = next(e["id"] for e in card["body"] if e.get("type") == "Input.Text")
    record = build_record(
        card, {reason_id: "Seasonal staff left"}, "✓ Ask an approver — Alex Wilber, 06 Dec 2026 14:03 UTC"
    )
    assert_valid_card(record)
    shown = card_text(record)
    assert "Seasonal staff left" in shown and "✓ Ask an approver — Alex Wilber" in shown
    assert _submits(record) == [] and not any(e.get("type", "").startswith("Input.") for e in record["body"])
    assert record["msteams"] == card["msteams"]


def test_a_form_record_shows_choices_by_their_titles_and_toggles_as_yes_or_no() -> None:
    contact = {"mca_first_name": "Ádám", "mca_last_name": "Kovács", "mca_email": "adam@fabrikam.example"}
    card = build_tenant_confirm_card(FORM, contact, errors={}, rev=1)
    toggle = next(e for e in card["body"] if e.get("type") == "Input.Toggle")
    record = build_record(card, {toggle["id"]: toggle.get("valueOn", "true")}, "✓ Create the tenant — Alex")
    assert_valid_card(record)
    assert f"✓ {toggle['title']}" in card_text(record)
    unticked = build_record(card, {toggle["id"]: toggle.get("valueOff", "false")}, "✕ Cancelled")
    assert f"Not ticked: {toggle['title']}" in card_text(unticked)


def test_a_button_that_sends_no_inputs_leaves_them_out_of_the_record() -> None:
    """ "Last month's bill" ignores the chooser's months: the record must not say they were asked for."""
    months = (("2026-11", "November 2026"), ("2026-10", "October 2026"))
    card = build_range_card(RangeChoiceView(months, "2026-10", "2026-11"))
    last = build_record(card, {"verb": RANGE_VERB, "choice": "last"}, "✓ Last month's bill — Alex")
    assert_valid_card(last)
    assert "From" not in card_text(last) and "November 2026" not in card_text(last)
    picked = {"verb": RANGE_VERB, "choice": "range", "first_month": "2026-10", "last_month": "2026-11"}
    ranged = build_record(card, picked, "✓ Show these months — Alex")
    assert "**From**: October 2026" in card_text(ranged) and "**To**: November 2026" in card_text(ranged)


def test_the_record_of_a_form_corrected_after_an_error_leaves_the_error_out() -> None:
    """The form was shown again with an error, then corrected and done: the record says what was
    done, not the error of the earlier try."""
    form = ui.build_new_user_card(
        NewUserDefaults(["contoso.onmicrosoft.com"], "US"),
        {"user_name": "kim lee"},
        "key",
        error="The user name may use letters",
        error_field="user_name",
    )
    record = build_record(form, {"user_name": "kim.lee", "password_email": "kim@example.com"}, "✓ Create user")
    assert_valid_card(record)
    text = card_text(record)
    assert "The user name may use letters" not in text and "**User name**: kim.lee" in text
    assert "The user name may use letters" in card_text(form)


def test_a_search_box_and_its_button_leave_no_trace_in_the_record() -> None:
    """What was searched for is not what was done; the row that held the box and its button goes."""
    pool = PoolView("sku-1", "Microsoft 365 Business Basic", "O365_BUSINESS_ESSENTIALS", 3, 1, [], None)
    rows = [UserRow("id-1", "Kim Lee", "kim@contoso.onmicrosoft.com", "active", 0, "US")]
    card = ui.build_assign_card(rows, [pool], "key", search="kim", total_users=1)
    record = build_record(card, {"search": "kim", "user_ids": "id-1", "licence": "sku-1"}, "✓ Assign")
    assert_valid_card(record)
    text = card_text(record)
    assert "kim\n" not in text + "\n" and "Search" not in text
    assert "**Users to get the licence**: Kim Lee (kim@contoso.onmicrosoft.com) — 0 licences" in text
    assert not [node for node in walk(record) if node.get("type") == "ColumnSet"]
