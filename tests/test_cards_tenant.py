"""Every "add tenant" / "my services" card against the Adaptive Card 1.5 schema, and what each says."""

from __future__ import annotations

from datetime import UTC, datetime

from cards.tenant import (
    NO_CHARGES,
    FormRules,
    ServiceCard,
    TakenDomain,
    TenantReady,
    build_address_suggestion_card,
    build_already_has_tenant_card,
    build_link_or_create_card,
    build_mca_card,
    build_my_services_card,
    build_tenant_confirm_card,
    build_tenant_form_card,
    build_tenant_ready_card,
)
from services import formatting
from tests.cardcheck import assert_valid_card
from tests.fakes import card_text

FORM = {
    "company_name": "Fabrikam Kft",
    "address_line1": "Andrássy út 12",
    "city": "Budapest",
    "postal_code": "1061",
    "country": "HU",
    "first_name": "Ádám",
    "last_name": "Kovács",
    "email": "adam@fabrikam.example",
    "phone": "+36 1 234 5678",
    "culture": "hu-HU",
    "language": "hu",
    "registration_number": "01-09-123456",
    "domain_prefix": "fabrikamkft",
}
HU = FormRules(
    country="HU",
    registration_required=True,
    phone_required=True,
    cultures=("hu-HU", "en-US"),
    languages=("hu", "en"),
)
WHEN = datetime(2026, 11, 16, 9, 30, tzinfo=UTC)


def _ids(card: dict) -> list[str]:
    return [element["id"] for element in card["body"] if "id" in element]


def test_link_or_create_card() -> None:
    card = build_link_or_create_card("Fabrikam Kft", "https://partner.example/accept?x=1", notice="Not yet.", rev=3)
    assert_valid_card(card)
    text = card_text(card)
    assert "global administrator" in text and "https://partner.example/accept?x=1" in text and "Not yet." in text
    assert all(a["data"]["rev"] == 3 for a in card["actions"] if a["type"] == "Action.Submit")


def test_form_card_with_every_field_an_error_stays_valid_and_small() -> None:
    errors = {key: f"Problem with {key}." for key in FORM}
    taken = TakenDomain("fabrikamkft.onmicrosoft.com", "https://partner.example/accept", "fabrikamkftltd")
    card = build_tenant_form_card(FORM, HU, errors=errors, notice="Check the card.", taken=taken, rev=2)
    assert_valid_card(card)
    body = card["body"]
    for key in FORM:  # each error right under its own input
        index = next(i for i, element in enumerate(body) if element.get("id") == key)
        assert body[index + 1]["text"] == f"Problem with {key}." and body[index + 1]["color"] == "attention"
    text = card_text(card)
    assert "required by Microsoft in Hungary" in text and "fabrikamkftltd" in text
    assert "already has a Microsoft tenant" in text
    assert "Problem with postal_code." in text
    assert f"Please correct the {len(FORM)} fields marked below; nothing was sent to Microsoft." in text
    one = card_text(build_tenant_form_card(FORM, HU, errors={"city": "No such city."}, rev=2))
    assert "Please correct the 1 field marked below;" in one


def test_form_card_hides_the_registration_number_where_it_is_not_used() -> None:
    card = build_tenant_form_card({**FORM, "registration_number": ""}, FormRules(country="GB", cultures=("en-GB",)))
    assert_valid_card(card)
    assert "registration_number" not in _ids(card)


def test_address_suggestion_card() -> None:
    card = build_address_suggestion_card(FORM, {**FORM, "address_line1": "Andrássy út 12."}, "Microsoft suggests…")
    assert_valid_card(card)
    assert "Use the suggested address" in [a["title"] for a in card["actions"]]
    card = build_address_suggestion_card(FORM, None, "Microsoft could not confirm every part.")
    assert_valid_card(card)
    assert "Use the suggested address" not in [a["title"] for a in card["actions"]]


def test_confirm_card_says_no_charges_and_asks_for_the_agreement() -> None:
    contact = {"mca_first_name": "Ádám", "mca_last_name": "Kovács", "mca_email": "adam@fabrikam.example"}
    card = build_tenant_confirm_card(FORM, contact, errors={"mca_accept": "Accept it."}, rev=5)
    assert_valid_card(card)
    text = card_text(card)
    assert NO_CHARGES in text and "fabrikamkft.onmicrosoft.com" in text and "01-09-123456" in text
    assert "mca_accept" in _ids(card) and "Accept it." in text


def test_ready_card_moves_on_to_add_subscription() -> None:
    card = build_tenant_ready_card(
        TenantReady("fabrikamkft.onmicrosoft.com", "c-1", "admin@fabrikamkft.onmicrosoft.com", "Mailed to a***@x.")
    )
    assert_valid_card(card)
    commands = [a["data"].get("command") for a in card["actions"]]
    assert commands == ["add subscription", "my services"]
    assert "No charges have arisen" in card_text(card)


def test_my_services_card_in_each_state() -> None:
    active = ServiceCard(
        "Fabrikam Kft", "active", "linked", "fabrikam.onmicrosoft.com", "c-1", "adam@fabrikam.example", WHEN
    )
    for shown in (
        build_my_services_card(None, organisation_name="Fabrikam Kft", can_manage=True),
        build_my_services_card(None, organisation_name="Fabrikam Kft", can_manage=False),
        build_my_services_card(
            ServiceCard("Fabrikam Kft", "creating", "created", "f.onmicrosoft.com", None, "a@b.example", WHEN),
            organisation_name="Fabrikam Kft",
            can_manage=True,
        ),
        build_my_services_card(active, organisation_name="Fabrikam Kft", can_manage=True),
        build_already_has_tenant_card(active),
    ):
        assert_valid_card(shown)
    text = card_text(build_my_services_card(active, organisation_name="Fabrikam Kft", can_manage=True))
    assert "Linked (existing tenant)" in text and "c-1" in text and "When\nNov 16, 2026, 9:30\u202fAM UTC\n" in text
    assert "Add tenant" in card_text(build_my_services_card(None, organisation_name="F", can_manage=True))
    # The service links to where it is run, by role.
    admin = build_my_services_card(active, organisation_name="F", can_manage=True, can_read_bills=True)
    reader = build_my_services_card(active, organisation_name="F", can_manage=False, can_read_bills=True)
    approver = build_my_services_card(active, organisation_name="F", can_manage=False)
    assert [a["title"] for a in admin["actions"]] == ["Subscriptions", "Users", "Add a subscription", "Billing"]
    assert [a["title"] for a in reader["actions"]] == ["Subscriptions", "Billing"]
    assert [a["title"] for a in approver["actions"]] == ["Subscriptions"]


def test_mca_card_for_a_linked_tenant() -> None:
    contact = {"mca_first_name": "Kim", "mca_last_name": "Akers", "mca_email": "kim@contoso.example"}
    card = build_mca_card("Contoso Ltd", "contoso.onmicrosoft.com", contact, errors={"mca_email": "Bad."}, rev=2)
    assert_valid_card(card)
    text = card_text(card)
    assert "contoso.onmicrosoft.com" in text and "customeragreement" in text and "Bad." in text
    assert {"mca_first_name", "mca_last_name", "mca_email", "mca_accept"} <= set(_ids(card))


def _element(card: dict, input_id: str) -> dict:
    return next(element for element in card["body"] if element.get("id") == input_id)


def test_the_country_and_its_states_are_chosen_from_lists_named_in_the_readers_language() -> None:
    au = FormRules(country="AU", state_required=True, states=("NSW", "VIC", "ACT"), cultures=("en-AU",))
    form = {**FORM, "country": "AU", "state": "vic"}
    with formatting.reading("nb_NO"):
        card = build_tenant_form_card(form, au, rev=1)
    assert_valid_card(card)
    country = _element(card, "country")
    assert country["type"] == "Input.ChoiceSet" and country["value"] == "AU" and country["isRequired"]
    names = {choice["value"]: choice["title"] for choice in country["choices"]}
    assert len(names) == 249 and names["NO"] == "Norge" and names["DE"] == "Tyskland"  # every ISO country
    state = _element(card, "state")
    assert state["type"] == "Input.ChoiceSet" and state["value"] == "VIC" and state["isRequired"]
    assert [c["title"] for c in state["choices"]] == [
        "Australian Capital Territory (ACT)",
        "New South Wales (NSW)",
        "Victoria (VIC)",
    ]
    assert state["label"] == "Delstat eller region (påkrevd i Australia)"  # the words in Norwegian too
    assert "Norway" in {c["title"] for c in _element(build_tenant_form_card(FORM, HU), "country")["choices"]}
    # No states in Microsoft's rules: typed; the phone hint is a number of the country.
    hungarian = build_tenant_form_card(FORM, HU)
    assert _element(hungarian, "state")["type"] == "Input.Text"
    assert _element(hungarian, "phone")["placeholder"] == "+36 1 234 5678"  # libphonenumber's example
