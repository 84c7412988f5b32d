"""The card checker itself must reject what Teams would reject."""

import pytest

from cards.base import card, text
from tests.cardcheck import assert_valid_card


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


def test_rejects_cards_over_the_teams_size_limit():
    big = card([text("x" * 1000) for _ in range(40)])
    with pytest.raises(AssertionError, match="bytes"):
        assert_valid_card(big)
