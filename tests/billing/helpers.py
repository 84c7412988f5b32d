"""A billing service on the test database with a frozen clock and an in-test price source."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.access import Caller
from services.billing.service import BillingService
from services.clock import Clock as MicrosoftClock
from services.container import Services
from services.price_rules import UnitPrice


@dataclass
class ListPrices:
    """The price-source seam (`PriceBook.entries_for`) held in memory: the customer's and global rows."""

    by_organisation: dict[int, list[UnitPrice]] = field(default_factory=dict)
    global_entries: list[UnitPrice] = field(default_factory=list)

    async def entries_for(self, organisation_id: int) -> list[UnitPrice]:
        return [*self.by_organisation.get(organisation_id, []), *self.global_entries]


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def billing_service(services: Services, prices: ListPrices, clock: Clock) -> BillingService:
    return BillingService(services.sessions, services.ledger, prices, services.alerts, clock=MicrosoftClock(clock))


def caller(organisation_id: int, *roles: str, member_id: int = 1, email: str = "alex@contoso.example") -> Caller:
    return Caller(
        member_id=member_id,
        organisation_id=organisation_id,
        organisation_name="Contoso Ltd",
        email=email,
        display_name="Alex Wilber",
        roles=frozenset(roles or ("admin",)),
    )
