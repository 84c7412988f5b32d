"""Every users/licences card: valid Adaptive Card 1.5 under Teams' size, and says the right things."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cards import users as ui
from services import formatting
from services.users.directory import DirectoryEntry, EntryResult
from services.users.licences import LicenceOutcome, PoolView, UserResult
from services.users.service import NewUserDefaults, SubscriptionBrief, UserDetail, UserLicence, UserRow, UsersPage
from tests.cardcheck import assert_valid_card
from tests.chat import walk
from tests.fakes import card_text

NOW = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
SUB = SubscriptionBrief("sub-1", "Microsoft 365 Business Basic", 3, "active", "P1Y", "monthly")
POOL = PoolView("sku-1", "Microsoft 365 Business Basic", "O365_BUSINESS_ESSENTIALS", 3, 1, [SUB], NOW)


def _rows(count):
    return [
        UserRow(f"id-{i}", f"Person {i}", f"p{i}@contoso.onmicrosoft.com", "active", i % 3, "US") for i in range(count)
    ]


def _verbs(node, found=None):
    found = [] if found is None else found
    if isinstance(node, dict):
        if node.get("type") == "Action.Submit":
            found.append(node["data"]["verb"])
        for value in node.values():
            _verbs(value, found)
    elif isinstance(node, list):
        for value in node:
            _verbs(value, found)
    return found


def test_freshness_in_words():
    assert ui.freshness(None, NOW) == "Not read from Microsoft yet."
    assert ui.freshness(None, NOW, syncing=True).startswith("Still reading your users from Microsoft")
    assert ui.freshness(NOW - timedelta(seconds=20), NOW) == "Synced with Microsoft just now."
    assert ui.freshness(NOW - timedelta(minutes=7), NOW, syncing=True).startswith("Synced with Microsoft 7 minutes ago")
    assert "3 hours ago" in ui.freshness(NOW - timedelta(hours=3), NOW)
    assert ui.freshness(NOW - timedelta(minutes=1), NOW) == "Synced with Microsoft 1 minute ago."


def test_users_card_lists_names_user_names_licences_and_paging():
    page = UsersPage(_rows(10), 25, 2, 3, "per", NOW - timedelta(minutes=6), True, "")
    card = ui.build_users_card(page, NOW, notice="Refreshed from Microsoft.")
    assert_valid_card(card)
    text = card_text(card)
    assert "Person 1" in text and "p1@contoso.onmicrosoft.com" in text and "1 licence · active" in text
    assert "2 licences · active" in text
    assert "Page 2 of 3 · 25 users" in text and "25 users match 'per'." in text
    assert "refreshing in the background" in text
    one = card_text(ui.build_users_card(UsersPage(_rows(1), 1, 1, 1, "per", NOW, True, ""), NOW))
    assert "1 user matches 'per'." in one and "Page 1 of 1 · 1 user\n" in one
    verbs = _verbs(card)
    assert verbs.count(ui.USERS_PAGE) == 2 and ui.USERS_OPEN in verbs and ui.USERS_NEW in verbs
    assert ui.USERS_ASSIGN in verbs and ui.USERS_DIRECTORY in verbs


def test_users_card_sent_from_a_channel_has_no_actions_but_opening_the_list():
    page = UsersPage(_rows(3), 3, 1, 1, "", NOW, False, "the listing failed")
    card = ui.build_users_card(page, NOW, interactive=False)
    assert_valid_card(card)
    text = card_text(card)
    assert _verbs(card) == ["command"] and "Could not read your users from Microsoft: the listing failed" in text


def test_user_card_shows_licences_with_their_subscriptions_and_removal():
    detail = UserDetail(
        "id-1",
        "Kim Lee",
        "kim@contoso.onmicrosoft.com",
        "Kim",
        "Lee",
        "GB",
        "active",
        [UserLicence("sku-1", "Microsoft 365 Business Basic", [SUB])],
        NOW,
    )
    card = ui.build_user_card(detail, NOW, "key-1", notice="Licences removed.")
    assert_valid_card(card)
    text = card_text(card)
    assert "Microsoft 365 Business Basic: 3 seats, active, 1-year commitment, billed monthly" in text
    assert "GB" in text and "Licences read from Microsoft just now." in text
    assert ui.USERS_UNASSIGN in _verbs(card)
    empty = ui.build_user_card(
        UserDetail("id-2", "Sam", "sam@x.onmicrosoft.com", "", "", "", "active", [], None), NOW, "key"
    )
    assert_valid_card(empty)
    assert "no licences" in card_text(empty) and ui.USERS_UNASSIGN not in _verbs(empty)
    # A missing name reads "not set" (a lone "-" renders as a list bullet).
    assert "First name\nnot set\nLast name\nnot set" in card_text(empty)


def _inputs(card):
    return {node["id"]: node for node in walk(card) if str(node.get("type", "")).startswith("Input.")}


def _action(card, verb):
    return next(action for action in card["actions"] if action.get("data", {}).get("verb") == verb)


def test_new_user_card_keeps_values_and_shows_the_error_at_the_field():
    defaults = NewUserDefaults(["contoso.onmicrosoft.com"], "US")
    card = ui.build_new_user_card(
        defaults, {"user_name": "kim lee", "first_name": "Kim"}, "key", error="Bad user name", error_field="user_name"
    )
    assert_valid_card(card)
    text = card_text(card)
    assert "Bad user name" in text and "never shown here" in text
    assert _inputs(card)["user_name"]["value"] == "kim lee"
    fresh = ui.build_new_user_card(defaults, {}, "key")
    assert_valid_card(fresh)
    assert _inputs(fresh)["usage_location"]["value"] == "US"  # defaults to the organisation's country
    # Chosen from every ISO country, named in the reader's language, submitting the code.
    with formatting.reading("de_DE"):
        german = ui.build_new_user_card(defaults, {}, "key")
    location = _inputs(german)["usage_location"]
    assert location["type"] == "Input.ChoiceSet" and location["isRequired"]
    assert {"title": "Vereinigtes Königreich", "value": "GB"} in location["choices"] and len(location["choices"]) == 249
    # Leaving the form needs none of its fields: a required one left empty must not stop it.
    assert _action(fresh, ui.USERS_LIST)["associatedInputs"] == "none"
    assert "associatedInputs" not in _action(fresh, ui.USERS_CREATE)


def test_one_tenant_domain_is_shown_beside_the_user_name_several_are_a_choice():
    one = ui.build_new_user_card(NewUserDefaults(["contoso.onmicrosoft.com"], "US"), {}, "key")
    assert "domain" not in _inputs(one) and "@contoso.onmicrosoft.com" in card_text(one)
    assert _action(one, ui.USERS_CREATE)["data"]["domain"] == "contoso.onmicrosoft.com"
    two = ui.build_new_user_card(
        NewUserDefaults(["contoso.onmicrosoft.com", "contoso.com"], "US"), {"domain": "contoso.com"}, "key"
    )
    assert_valid_card(two)
    domain = _inputs(two)["domain"]
    assert domain["value"] == "contoso.com" and [c["title"] for c in domain["choices"]] == [
        "@contoso.onmicrosoft.com",
        "@contoso.com",
    ]
    assert "domain" not in _action(two, ui.USERS_CREATE)["data"]


def test_assign_card_shows_pool_numbers_and_subscriptions_and_caps_choices():
    card = ui.build_assign_card(_rows(150), [POOL], "key", total_users=150, error="Too many", error_field="users")
    assert_valid_card(card)
    text = card_text(card)
    assert "2 available of 3 (1 assigned)" in text and "Too many" in text
    assert "150 users: the first 15 are listed; search by name to find the others." in text
    assert "Microsoft 365 Business Basic: 3 seats (active)" in text
    assert "1. " not in text and "2. " not in text  # no numbered headings (Teams renders them as lists)
    picker = _inputs(card)["user_ids"]
    assert len(picker["choices"]) == ui.MAX_CHOICES and picker["style"] == "expanded"
    assert picker["choices"][1]["title"] == "Person 1 (p1@contoso.onmicrosoft.com) — 1 licence"
    none = ui.build_assign_card(_rows(1), [], "key")
    assert_valid_card(none)
    assert "no licences to assign" in card_text(none) and ui.USERS_ASSIGN_DO not in _verbs(none)


def test_ticked_users_stay_listed_first_besides_the_searchs_fifteen():
    rows = _rows(40)
    ticked = [rows[30].user_id, rows[35].user_id]
    users = [rows[30], rows[35], *rows[:20]]
    card = ui.build_assign_card(users, [POOL], "key", selected_users=ticked, search="Person", total_users=40)
    picker = _inputs(card)["user_ids"]
    assert picker["value"] == "id-30,id-35"
    assert [c["value"] for c in picker["choices"]] == ["id-30", "id-35"] + [f"id-{i}" for i in range(15)]
    assert "40 users match: the first 15 are listed" in card_text(card)
    few = ui.build_assign_card(_rows(3), [POOL], "key", total_users=3)
    assert "listed" not in card_text(few) and len(_inputs(few)["user_ids"]["choices"]) == 3


def test_outcome_cards():
    outcome = LicenceOutcome(POOL, [UserResult("a", "Kim", True, "assigned"), UserResult("b", "Sam", False, "No")])
    card = ui.build_licence_outcome_card("Licences assigned", outcome)
    assert_valid_card(card)
    assert "✔ Kim: assigned" in card_text(card) and "✖ Sam: No" in card_text(card)
    repeat = ui.build_licence_outcome_card("Licences assigned", LicenceOutcome(POOL, [], already_done=True))
    assert_valid_card(repeat)
    assert "already done" in card_text(repeat)
    results = ui.build_directory_outcome_card("Imported", [EntryResult("Ana", True, "created")])
    assert_valid_card(results)
    for mail_failed, already, queued in (
        (False, False, False),
        (True, False, False),
        (False, True, False),
        (False, False, True),
    ):
        created = ui.build_user_created_card(
            "id",
            "kim@x.onmicrosoft.com",
            "Kim",
            "k@example.com",
            mail_failed=mail_failed,
            already=already,
            mail_queued=queued,
        )
        assert_valid_card(created)
        assert "Temporary password" not in card_text(created)
        assert ("is queued" in card_text(created)) == queued


def test_directory_card_offers_import_and_export():
    entries = [DirectoryEntry(1, "ana@example.com", "Ana", "Silva", "Ana Silva", "ana", "PT", None, False)]
    counts = {"in_directory": 2, "waiting_total": 1, "entries_matching": 1, "users_matching": 2}
    card = ui.build_directory_card(entries, _rows(2), "key", **counts, error="Select someone")
    assert_valid_card(card)
    text = card_text(card)
    assert "2 people in the directory; 1 not yet in the Microsoft tenant" in text and "Ana Silva" in text
    assert {ui.USERS_IMPORT, ui.USERS_EXPORT} <= set(_verbs(card))
    assert {"entry_search", "user_search"} <= set(_inputs(card))  # each picker has its search box
    nobody = ui.build_directory_card(
        [], _rows(1), "key", in_directory=0, waiting_total=0, entries_matching=0, users_matching=1
    )
    assert_valid_card(nobody)
    assert ui.USERS_IMPORT not in _verbs(nobody) and "entry_ids" not in _inputs(nobody)


def test_directory_pickers_list_fifteen_and_keep_what_was_entered():
    entries = [
        DirectoryEntry(i, f"p{i}@example.com", f"Pat{i}", "Doe", f"Pat{i} Doe", "", "", None, False) for i in range(30)
    ]
    values = {"entry_ids": "29", "entry_search": "Pat", "user_search": "Person", "send_to": "it@example.com"}
    card = ui.build_directory_card(
        [entries[29], *entries],
        _rows(15),
        "key",
        in_directory=30,
        waiting_total=30,
        entries_matching=30,
        users_matching=20,
        values=values,
    )
    assert_valid_card(card)
    inputs = _inputs(card)
    assert inputs["entry_ids"]["value"] == "29" and len(inputs["entry_ids"]["choices"]) == 16
    assert len(inputs["user_ids"]["choices"]) == 15 and inputs["send_to"]["value"] == "it@example.com"
    assert inputs["entry_search"]["value"] == "Pat" and inputs["user_search"]["value"] == "Person"
    text = card_text(card)
    assert "30 people: the first 15 are listed" in text and "20 users: the first 15 are listed" in text


def test_continue_here_card_starts_the_task_in_the_personal_chat():
    card = ui.build_continue_here_card("New user", "new user")
    assert_valid_card(card)
    assert card["actions"][0]["data"] == {"verb": "command", "command": "new user"}
