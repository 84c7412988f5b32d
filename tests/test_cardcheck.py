"""The card checker itself must reject what Teams would reject."""

import copy
import random
from typing import Any

import pytest
from pydantic import ValidationError

from cards.base import card, command_button, country_choice, facts, heading, submit, text
from tests.cardcheck import (
    assert_valid_attachment,
    assert_valid_card,
    assert_valid_compose_result,
    fast_says_valid,
    schema_errors,
)


def test_accepts_a_minimal_card_with_the_teams_property():
    assert_valid_card(card([text("hello")]))


@pytest.mark.parametrize(
    "broken",
    [
        {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock"}]},  # TextBlock needs text
        {"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "NoSuchElement", "text": "x"}]},
        {"type": "AdaptiveCard", "version": "1.5", "body": [], "unknownRootProperty": 1},
        {"type": "AdaptiveCard", "version": "1.2", "body": []},
        {"type": "AdaptiveCard", "version": "1.5", "actions": [{"type": "Action.Submit", "title": 5}]},
    ],
)
def test_rejects_invalid_cards(broken):
    with pytest.raises(AssertionError):
        assert_valid_card(broken)


@pytest.mark.parametrize("field", ["key", "ref"])
def test_rejects_action_data_the_renderer_cannot_send(field):
    """The rendered Playground throws on a submit whose data has a top-level `key` and sends nothing."""
    nested = {"type": "Container", "items": [], "selectAction": {"type": "Action.Submit", "data": {field: "x"}}}
    for broken in (
        card([text("x")], [{"type": "Action.Submit", "title": "Go", "data": {"verb": "go", field: "k"}}]),
        card([nested]),
    ):
        with pytest.raises(AssertionError, match="renderer cannot send"):
            assert_valid_card(broken)
    assert_valid_card(card([text("x")], [{"type": "Action.Submit", "title": "Go", "data": {"request_key": "k"}}]))


def test_rejects_cards_over_the_teams_size_limit():
    big = card([text("x" * 1000) for _ in range(40)])
    with pytest.raises(AssertionError, match="bytes"):
        assert_valid_card(big)


def test_other_attachments_are_checked_against_their_own_models():
    from cards.billing import (
        SearchHit,
        SpendView,
        build_spend_card,
        compose_extension_result,
        file_consent_attachment,
        file_info_attachment,
    )

    consent = file_consent_attachment("bill.xlsx", 1234, "Your bill", {"export": "abc"})
    assert_valid_attachment(consent)
    assert_valid_attachment(file_info_attachment("bill.xlsx", "https://x/bill.xlsx", "u-1", "xlsx"))
    spend = build_spend_card(
        SpendView("E3", "the last 12 months", (("Nov 2026", "10.00 USD"),), "10.00 USD", "billing")
    )
    assert_valid_compose_result(compose_extension_result([SearchHit("Spend on E3", "the last 12 months", spend)]))

    with pytest.raises(AssertionError, match="no field"):  # a misspelt field Teams would ignore
        assert_valid_attachment({**consent, "content": {**consent["content"], "sizeBytes": 1}})
    with pytest.raises(ValidationError):  # a wrong type
        assert_valid_attachment({**consent, "content": {**consent["content"], "sizeInBytes": "big"}})
    with pytest.raises(AssertionError, match="no check"):  # an attachment type nobody checks
        assert_valid_attachment({"contentType": "application/vnd.microsoft.card.hero", "content": {}})
    broken_preview = compose_extension_result([SearchHit("t", "s", spend)])
    broken_preview["composeExtension"]["attachments"][0]["preview"]["content"]["titel"] = "x"
    with pytest.raises(AssertionError, match="no field"):
        assert_valid_compose_result(broken_preview)


def _mutated(node: Any, rng: random.Random) -> None:
    """One change somewhere in `node`: a wrong type, an unknown element or property, a bad member."""
    if isinstance(node, dict) and node:
        key = rng.choice(sorted(node))
        match rng.randrange(5):
            case 0:
                node[key] = 12345
            case 1:
                node[key] = {"bogus": 1}
            case 2:
                node["type"] = "NotAType"
            case 3:
                node["unknownProperty"] = True
            case _:
                _mutated(node[key], rng)
    elif isinstance(node, list) and node:
        index = rng.randrange(len(node))
        if rng.random() < 0.3:
            node[index] = "text"
        else:
            _mutated(node[index], rng)


def test_the_fast_validator_agrees_with_the_reference_on_valid_and_broken_cards():
    """`assert_valid_card` lets jsonschema-rs decide and jsonschema list the errors: on cards of the
    kinds the bot sends, and hundreds of broken variants of them, both must say the same."""
    cards = [
        card([heading("Subscriptions"), text("hello", subtle=True), facts([("Seats", "10"), ("Term", "P1Y")])]),
        card(
            [country_choice("country", "Country", "NO", required=True), {"type": "Input.Number", "id": "q", "min": 1}],
            [submit("Save", "save", {"id": "x"}, style="positive"), command_button("Back", "subscriptions")],
        ),
        card(
            [{"type": "Container", "items": [text("a")], "selectAction": submit("Open", "open")}],
            [{"type": "Action.ShowCard", "title": "More", "card": {"type": "AdaptiveCard", "body": [text("b")]}}],
        ),
    ]
    rng = random.Random(16)
    broken = 0
    for original in cards:
        bare = {key: value for key, value in original.items() if key != "msteams"}
        assert fast_says_valid(bare) and not schema_errors(bare)
        for _attempt in range(150):
            variant = copy.deepcopy(bare)
            _mutated(variant, rng)
            reference_valid = not schema_errors(variant)
            broken += not reference_valid
            assert fast_says_valid(variant) == reference_valid, variant
    assert broken > 300  # the variants did exercise rejection
