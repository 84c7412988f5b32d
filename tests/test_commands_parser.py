"""The one-line command grammar and the fuzzy matcher, offline: what each typed form is read as."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.commands.matching import Candidate, Matcher
from services.commands.parser import EXAMPLES, Command, Kind, NotUnderstood, looks_like_command, parse

K = Kind


@pytest.mark.parametrize(
    ("typed", "kind", "product", "person", "quantity", "term", "billing"),
    [
        ("add 5 seats to Business Standard", K.ADD_SEATS, "Business Standard", "", 5, "", ""),
        ("please add 5 seats to business standard.", K.ADD_SEATS, "business standard", "", 5, "", ""),
        ("add two more licences to E3", K.ADD_SEATS, "E3", "", 2, "", ""),
        ("add 5 more E3", K.ADD_SEATS, "E3", "", 5, "", ""),
        ("increase Visio by 3", K.ADD_SEATS, "Visio", "", 3, "", ""),
        ("remove 2 seats from E3", K.REMOVE_SEATS, "E3", "", 2, "", ""),
        ("remove 3 E3 seats", K.REMOVE_SEATS, "E3", "", 3, "", ""),
        ("reduce Teams Essentials by 1", K.REMOVE_SEATS, "Teams Essentials", "", 1, "", ""),
        ("set Teams Essentials to 12 seats", K.SET_SEATS, "Teams Essentials", "", 12, "", ""),
        ("change the E3 subscription to 4", K.SET_SEATS, "E3", "", 4, "", ""),
        ("buy 3 Microsoft 365 Business Basic monthly", K.BUY, "Microsoft 365 Business Basic", "", 3, "P1M", "monthly"),
        ("buy Visio Plan 2 annual billed monthly", K.BUY, "Visio Plan 2", "", None, "P1Y", "monthly"),
        ("buy 2 E5 yearly", K.BUY, "E5", "", 2, "P1Y", ""),
        (
            "order 10 Business Premium on a 3 year term paid upfront",
            K.BUY,
            "Business Premium",
            "",
            10,
            "P3Y",
            "triennial",
        ),
        ("buy Project Plan 1", K.BUY, "Project Plan 1", "", None, "", ""),
        ("suspend Visio", K.SUSPEND, "Visio", "", None, "", ""),
        ("reactivate Visio", K.REACTIVATE, "Visio", "", None, "", ""),
        ("turn off auto-renew for E3", K.AUTORENEW_OFF, "E3", "", None, "", ""),
        ("auto-renew off E3", K.AUTORENEW_OFF, "E3", "", None, "", ""),
        ("don't renew Project Plan 3", K.AUTORENEW_OFF, "Project Plan 3", "", None, "", ""),
        ("turn on autorenew for the Visio subscription", K.AUTORENEW_ON, "Visio", "", None, "", ""),
        ("cancel Project Plan 3", K.CANCEL, "Project Plan 3", "", None, "", ""),
        ("cancel the E3 subscription", K.CANCEL, "E3", "", None, "", ""),
        ("assign E3 to diego", K.ASSIGN, "E3", "diego", None, "", ""),
        ("give Diego Siciliani an E3 licence", K.ASSIGN, "E3", "Diego Siciliani", None, "", ""),
        (
            "remove Business Standard from megan@contoso.com",
            K.UNASSIGN,
            "Business Standard",
            "megan@contoso.com",
            None,
            "",
            "",
        ),
        ("unassign the E3 licence from Adele", K.UNASSIGN, "E3", "Adele", None, "", ""),
        ("who has E3", K.WHO_HAS, "E3", "", None, "", ""),
        ("who is using Visio licences", K.WHO_HAS, "Visio", "", None, "", ""),
        ("how many Business Standard seats are free", K.FREE_SEATS, "Business Standard", "", None, "", ""),
        ("how many free E3 licences are there", K.FREE_SEATS, "E3", "", None, "", ""),
        ("when does E3 renew", K.RENEWAL, "E3", "", None, "", ""),
        ("when will our Visio expire?", K.RENEWAL, "Visio", "", None, "", ""),
        (
            "new user Diego Siciliani with Business Standard",
            K.NEW_USER,
            "Business Standard",
            "Diego Siciliani",
            None,
            "",
            "",
        ),
        ("onboard Ana Lopez with an E3 licence", K.NEW_USER, "E3", "Ana Lopez", None, "", ""),
        ("offboard diego", K.OFFBOARD, "", "diego", None, "", ""),
        ("remove user megan@contoso.com", K.OFFBOARD, "", "megan@contoso.com", None, "", ""),
        ("add -2 seats to E3", K.ADD_SEATS, "E3", "", -2, "", ""),
        ("add 0 seats to E3", K.ADD_SEATS, "E3", "", 0, "", ""),
    ],
)
def test_forms(
    typed: str, kind: Kind, product: str, person: str, quantity: int | None, term: str, billing: str
) -> None:
    parsed = parse(typed)
    assert isinstance(parsed, Command), parsed
    assert (parsed.kind, parsed.product, parsed.person, parsed.quantity, parsed.term, parsed.billing) == (
        kind,
        product,
        person,
        quantity,
        term,
        billing,
    )
    assert parsed.text == typed and not parsed.corrected_from


@pytest.mark.parametrize(
    ("typed", "kind", "was", "read_as"),
    [("suspnd visio", K.SUSPEND, "suspnd", "suspend"), ("asign e3 to diego", K.ASSIGN, "asign", "assign")],
)
def test_a_mistyped_command_word_is_corrected(typed: str, kind: Kind, was: str, read_as: str) -> None:
    parsed = parse(typed)
    assert isinstance(parsed, Command) and parsed.kind is kind
    assert (parsed.corrected_from, parsed.corrected_to) == (was, read_as)


@pytest.mark.parametrize(
    ("typed", "says", "first_suggestion"),
    [
        ("add seats to E3", "How many seats?", "add 5 seats to Business Standard"),
        ("remove seats from E3", "How many seats?", "remove 2 seats from E3"),
        ("set E3 to", "To how many seats?", "set Teams Essentials to 12 seats"),
        ("assign E3", "To whom?", "assign E3 to diego"),
        ("buy", "Buy what?", "buy 3 Microsoft 365 Business Basic monthly"),
        ("suspend", "did not understand", "suspend Visio"),
    ],
)
def test_malformed_commands_say_what_is_missing_and_the_closest_examples(
    typed: str, says: str, first_suggestion: str
) -> None:
    parsed = parse(typed)
    assert isinstance(parsed, NotUnderstood)
    assert says in parsed.message
    assert parsed.suggestions[0] == first_suggestion


def test_every_example_is_a_command_of_its_kind() -> None:
    for kind, example in EXAMPLES:
        parsed = parse(example)
        assert isinstance(parsed, Command) and parsed.kind is kind, example


@pytest.mark.parametrize(
    ("typed", "claimed"),
    [
        ("add 5 seats to E3", True),
        ("ad 5 seats to E3", True),
        ("cancel Project Plan 3", True),
        ("stop auto-renew for E3", True),
        ("frobnicate the widgets", False),
        ("hello", False),
        # the conversation's own words: "cancel" inside a task stops that task, it starts nothing
        ("cancel", False),
        ("Cancel.", False),
        ("stop", False),
        ("help", False),
        ("menu", False),
    ],
)
def test_what_the_command_task_claims(typed: str, claimed: bool) -> None:
    assert looks_like_command(typed) is claimed


def _catalog() -> Matcher[str]:
    data = json.loads((Path(__file__).parent.parent / "sandbox/catalog.json").read_text())
    return Matcher(
        [
            Candidate(
                f"{p['id']}:{s['id']}",
                p["title"],
                keys=(f"{p['id']}:{s['id']}", p["id"]),
                aliases=(s["skuPartNumber"],),
            )
            for p in data["products"]
            for s in p["skus"]
        ]
    )


@pytest.mark.parametrize(
    ("typed", "names", "fuzzy"),
    [
        ("Business Standard", ["Microsoft 365 Business Standard"], False),
        ("Teams Essentials", ["Microsoft Teams Essentials"], False),
        ("E3", ["Office 365 E3", "Microsoft 365 E3"], False),
        ("m365 e3", ["Microsoft 365 E3"], False),
        ("CFQ7TTC0LDPB:0001", ["Microsoft 365 Business Standard"], False),
        ("cfq7ttc0ldpb", ["Microsoft 365 Business Standard"], False),
        ("ENTERPRISEPACK", ["Office 365 E3"], False),
        ("Visio", ["Visio Plan 1", "Visio Plan 2"], False),
        ("Visio Plan 2", ["Visio Plan 2"], False),
        ("Busines Standrd", ["Microsoft 365 Business Standard"], True),
        ("teams esentials", ["Microsoft Teams Essentials"], True),
        ("E7", [], False),
    ],
)
def test_products_by_name_short_name_offer_id_and_with_typos(typed: str, names: list[str], fuzzy: bool) -> None:
    match = _catalog().match(typed)
    assert sorted(c.name for c in match.found) == sorted(names)
    assert match.fuzzy is fuzzy


def test_short_names_are_never_typos_of_each_other() -> None:
    """ "E3" must not be read as E5 (or E1): short words match exactly or not at all."""
    matcher = Matcher([Candidate("e5", "Office 365 E5"), Candidate("e1", "Office 365 E1")])
    assert matcher.match("E3").found == ()


def test_people_by_name_user_name_or_email_and_strictly_by_email() -> None:
    people = Matcher(
        [
            Candidate("d", "Diego Siciliani", keys=("diego@contoso.onmicrosoft.com",), aliases=("diego",)),
            Candidate("m", "Megan Bowen", keys=("megan@contoso.onmicrosoft.com",), aliases=("megan",)),
            Candidate("a", "Adele Vance", keys=("adele.vance@contoso.onmicrosoft.com",), aliases=("adele vance",)),
        ],
        min_prefix=3,
        strict_keys=True,
    )
    assert [c.value for c in people.match("diego").found] == ["d"]
    assert [c.value for c in people.match("Meg").found] == ["m"]
    assert [c.value for c in people.match("MEGAN@contoso.onmicrosoft.com").found] == ["m"]
    assert [c.value for c in people.match("Diego Sicilani").found] == ["d"]
    foreign = people.match("megan@fabrikam.com")
    assert foreign.found == () and foreign.suggestions[0] == "Megan Bowen"
