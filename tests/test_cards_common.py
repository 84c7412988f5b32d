"""Every card builder of the conversation skeleton: valid Adaptive Card 1.5, and says the right things."""

from cards.common import (
    CallerSummary,
    MenuEntry,
    build_error_card,
    build_help_card,
    build_menu_card,
    build_not_registered_card,
    build_welcome_card,
)
from tests.cardcheck import assert_valid_card
from tests.fakes import card_text

ALEX = CallerSummary("Alex Wilber", "Contoso Ltd", ["admin", "billing"])
ENTRIES = [MenuEntry("add tenant", "Add tenant", "Create your Microsoft 365 tenant")]


def _submits(card):
    """Every submit a user can trigger: the card's actions and its tappable rows."""
    rows = [item["selectAction"] for item in card["body"] if "selectAction" in item]
    return [a["data"] for a in [*card.get("actions", []), *rows] if a["type"] == "Action.Submit"]


def test_every_task_gets_its_button_however_many_there_are():
    entries = [MenuEntry(f"task {n}", f"Task {n}", f"Does thing {n}") for n in range(12)]
    card = build_menu_card(ALEX, entries)
    assert_valid_card(card)
    submits = _submits(card)
    assert all({"verb": "command", "command": f"task {n}"} in submits for n in range(12))


def test_menu_lists_entries_as_buttons_and_shows_who_is_signed_in():
    card = build_menu_card(ALEX, ENTRIES)
    assert_valid_card(card)
    said = card_text(card)
    assert "Contoso Ltd" in said and "Alex Wilber" in said and "admin, billing" in said
    assert {"verb": "command", "command": "add tenant"} in _submits(card)
    assert {"verb": "command", "command": "help"} in _submits(card)


def test_menu_without_tasks_says_so_instead_of_offering_nothing_silently():
    card = build_menu_card(CallerSummary("Megan", "Contoso Ltd", ["approver"]), [])
    assert_valid_card(card)
    assert "No tasks are available to you here yet" in card_text(card)
    assert _submits(card) == [{"verb": "command", "command": "help"}]


def test_welcome_greets_by_name_and_carries_the_menu():
    card = build_welcome_card(ALEX, ENTRIES)
    assert_valid_card(card)
    assert "Welcome, Alex Wilber" in card_text(card)
    assert {"verb": "command", "command": "add tenant"} in _submits(card)


def test_help_lists_the_basic_commands_and_the_current_task():
    card = build_help_card(ENTRIES, in_task="Add tenant")
    assert_valid_card(card)
    said = card_text(card)
    for command in ("menu", "help", "cancel", "add tenant"):
        assert command in said
    assert "You are in **Add tenant**" in said


def test_not_registered_tells_what_to_ask_the_reseller():
    card = build_not_registered_card("Pat")
    assert_valid_card(card)
    said = card_text(card)
    assert "not registered" in said and "work e-mail" in said and "admin, approver or billing" in said
    assert "actions" not in card


def test_error_card_shows_only_the_reference():
    card = build_error_card("abc123")
    assert_valid_card(card)
    assert "abc123" in card_text(card)


def test_help_lists_what_can_be_typed_for_each_task_and_inside_the_task():
    shortcuts = (("billing last month", "the most recent cycle"), ("billing this year", "this year so far"))
    billing = MenuEntry("billing", "Billing", "Bills", shortcuts)
    said = card_text(build_help_card([*ENTRIES, billing]))
    assert "**Billing**: type these" in said and "billing last month\nthe most recent cycle" in said
    assert "billing this year" in said and "Add tenant**: type" not in said  # a task without any
    inside = card_text(build_help_card((), in_task="Billing", shortcuts=shortcuts))
    assert "You are in **Billing**" in inside and "billing last month" in inside
