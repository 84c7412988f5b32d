"""A Contoso to type commands at: priced catalog (both E5s left unpriced), subscriptions bought
through the real client against the sandbox, users in the tenant (some holding licences), and a
second organisation with a user of its own. Shared by the command tests."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from services.container import Services
from services.models import SubscriptionRow, TenantUser
from services.organisations import OrganisationView
from services.partner_center.models import CustomerUser, LicenseAssignment, LicenseUpdate, PasswordProfile
from services.pricing import GLOBAL_LIST
from tests.cardcheck import assert_valid_activity_cards
from tests.chat import button, inputs
from tests.conftest import message
from tests.fakes import FakeConnector, card_of, said
from tests.subscription_fixtures import buy

UNPRICED = ("CFQ7TTC0LF8S", "CFQ7TTC0LFLZ")  # Office 365 E5, Microsoft 365 E5
STANDARD, O365_E3, VISIO2, TEAMS_ESS, PROJECT3, BASIC = (
    "CFQ7TTC0LDPB",
    "CFQ7TTC0LF8R",
    "CFQ7TTC0HD32",
    "CFQ7TTC0JN4R",
    "CFQ7TTC0HDB0",
    "CFQ7TTC0LH18",
)
SKUS = {STANDARD: "0001", O365_E3: "0001", VISIO2: "0002", TEAMS_ESS: "0002", PROJECT3: "0002", BASIC: "0001"}
PEOPLE = (("Diego", "Siciliani"), ("Megan", "Bowen"), ("Adele", "Vance"), ("Lee", "Gu"), ("Lidia", "Holloway"))


@dataclass
class World:
    services: Services
    org: OrganisationView
    subscriptions: dict[str, str]  # label -> subscription id
    users: dict[str, str]  # first name (lower case) -> user id
    domain: str


async def price_everything_but_e5(services: Services) -> None:
    await services.catalog.sync()
    if not await services.pricing.has_global_list():  # a started bot has generated it already
        await services.pricing.generate(GLOBAL_LIST, Decimal(15), actor="tests")
    exported = await services.pricing.export_csv(GLOBAL_LIST)
    kept = [line for line in exported.splitlines() if not line.startswith(UNPRICED)]
    await services.pricing.import_csv(GLOBAL_LIST, "\n".join(kept) + "\n", actor="tests", replace=True)


async def build_world(services: Services, org: OrganisationView, *, standard_seats: int = 10) -> World:
    await price_everything_but_e5(services)
    bought = {
        "standard": await buy(services, org, product=STANDARD, sku=SKUS[STANDARD], quantity=standard_seats),
        "o365e3": await buy(services, org, product=O365_E3, sku=SKUS[O365_E3], quantity=5),
        "visio": await buy(services, org, product=VISIO2, sku=SKUS[VISIO2], quantity=3, term="P1M"),
        "teams": await buy(services, org, product=TEAMS_ESS, sku=SKUS[TEAMS_ESS], quantity=4),
        "project": await buy(services, org, product=PROJECT3, sku=SKUS[PROJECT3], quantity=2, term="P1M"),
        "basic_year": await buy(services, org, product=BASIC, sku=SKUS[BASIC], quantity=6),
        "basic_month": await buy(services, org, product=BASIC, sku=SKUS[BASIC], quantity=2, term="P1M"),
    }
    await services.subscriptions.sync(org.id)
    customer = org.partner_center_customer_id
    assert customer
    client = services.partner_center
    domain = (await client.get_customer(customer)).company_profile.domain  # type: ignore[union-attr]
    users: dict[str, str] = {}
    for first, last in PEOPLE:
        created = await client.create_user(
            customer,
            CustomerUser(
                user_principal_name=f"{first.lower()}@{domain}",
                first_name=first,
                last_name=last,
                display_name=f"{first} {last}",
                usage_location="US",
                password_profile=PasswordProfile(password="Sandbox-Only-Pw-1!", force_change_password=True),
            ),
        )
        assert created.id
        users[first.lower()] = created.id.lower()
    licence = await licence_of(services, bought["standard"])
    await client.update_user_licenses(
        customer, users["megan"], LicenseUpdate(licenses_to_assign=[LicenseAssignment(sku_id=licence)])
    )
    await services.user_sync.sync(org.id)
    async with services.sessions.begin() as session:  # as if Microsoft had no usage location for Lidia
        lidia = await session.scalar(select(TenantUser).where(TenantUser.user_id == users["lidia"]))
        assert lidia is not None
        lidia.usage_location = ""
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="tests")
    async with services.sessions.begin() as session:
        session.add(
            TenantUser(
                organisation_id=other.id,
                user_id="99999999-0000-0000-0000-000000000001",
                user_principal_name="lee@fabrikam.onmicrosoft.com",
                display_name="Lee Fabrikam",
                usage_location="US",
                licence_sku_ids=[licence],
            )
        )
    return World(services, org, bought, users, domain or "")


async def licence_of(services: Services, subscription_id: str) -> str:
    async with services.sessions() as session:
        row = await session.scalar(select(SubscriptionRow).where(SubscriptionRow.id == subscription_id))
        assert row is not None and row.licence_sku_id
        return row.licence_sku_id


class Typist:
    """One person typing commands over the real endpoint; every reply of the turn is returned, its
    cards checked against the Adaptive Card schema."""

    def __init__(self, client: Any, fake: FakeConnector, url: str, **identity: Any) -> None:
        self.client, self.fake, self.url, self.identity = client, fake, url, identity

    def _conversation(self) -> str:
        return str(self.identity.get("conversation_id", "personal-chat-alex"))

    async def say(self, text: str | None = None, value: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        before = len(self.fake.messages(self._conversation()))
        body = message(text, service_url=self.url, value=value, **self.identity)
        response = await self.client.post("/api/messages", json=body)
        assert response.status == 202
        replies = self.fake.messages(self._conversation())[before:]
        for reply in replies:
            assert_valid_activity_cards(reply)  # every card the commands produce meets the 1.5 schema
        return replies


def last_card(replies: list[dict[str, Any]]) -> dict[str, Any]:
    """The last card among a turn's replies."""
    cards = [card_of(reply) for reply in replies if card_of(reply) is not None]
    assert cards, [said(reply) for reply in replies]
    return cards[-1]  # type: ignore[return-value]


def click(card: dict[str, Any], title: str, **typed: Any) -> dict[str, Any]:
    """What clicking the button called `title` submits, with the card's inputs (and `typed` ones)."""
    return {**inputs(card), **typed, **button(card, title)}
