"""Spending that needs an approver, per organisation, set by the operator:

- a monthly-cost threshold: a purchase, seat increase or add-on that adds more than this to the
  monthly cost needs an approver;
- commitments: whether anything committing to a year or three (P1Y, P3Y) always does;
- an annual limit: a change that would take the organisation's yearly run-rate (what its live
  subscriptions cost a year at the reseller's prices) over the limit needs an approver.

Below them nothing changes for the admin. `SpendingPolicies.require` raises `ApprovalNeeded` (with
the reasons and the policy in force) from the services that spend — ordering, seat changes, add-ons —
so the full tasks and the one-line commands meet the same policy. A request keeps the policy it was
made under (`Approval.policy`); the change it approves runs once, with the approval's id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit, formatting
from services.db import utcnow
from services.errors import DomainError, InvalidInput, NotFound
from services.i18n import N_, _
from services.models import Organisation, SpendingPolicy, SubscriptionRow
from services.pricing import PriceBook, per_month

COMMITMENTS = ("P1Y", "P2Y", "P3Y")
LIVE = ("active", "suspended")  # subscriptions that cost money
_TERMS = {"P1Y": N_("1 year"), "P2Y": N_("2 years"), "P3Y": N_("3 years"), "P1M": N_("1 month")}
UNCHANGED: Any = object()


@dataclass(frozen=True)
class PolicyView:
    currency: str
    monthly_threshold: Decimal | None
    commitments_need_approval: bool
    annual_limit: Decimal | None

    @property
    def is_empty(self) -> bool:
        return self.monthly_threshold is None and not self.commitments_need_approval and self.annual_limit is None

    def lines(self) -> list[str]:
        """The policy in words (the approval card and the admin read it)."""
        if self.is_empty:
            return [_("No spending needs an approver.")]
        lines = []
        if self.monthly_threshold is not None:
            threshold = formatting.money(self.monthly_threshold, self.currency)
            lines.append(_("A change adding more than {threshold} a month needs an approver.", threshold=threshold))
        if self.commitments_need_approval:
            lines.append(_("Any 1-year or 3-year commitment needs an approver."))
        if self.annual_limit is not None:
            limit = formatting.money(self.annual_limit, self.currency)
            lines.append(_("Spending over {limit} a year needs an approver.", limit=limit))
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "currency": self.currency,
            "monthly_threshold": "" if self.monthly_threshold is None else str(self.monthly_threshold),
            "commitments_need_approval": self.commitments_need_approval,
            "annual_limit": "" if self.annual_limit is None else str(self.annual_limit),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyView:
        return cls(
            str(data.get("currency") or "USD"),
            _amount(data.get("monthly_threshold")),
            bool(data.get("commitments_need_approval")),
            _amount(data.get("annual_limit")),
        )


NO_POLICY = PolicyView("USD", None, False, None)


@dataclass(frozen=True)
class Spend:
    """What a change costs, as the policy weighs it."""

    what: str  # "Buy 3 × Visio Plan 2", "Add 5 seats to Office 365 E3"
    currency: str
    monthly_increase: Decimal  # what it adds to the monthly cost
    term_duration: str  # the commitment it makes (P1M, P1Y, P3Y)
    charge_now: Decimal | None = None  # charged at once (pro rata), when known
    per_period: str = ""  # the new recurring cost, in words


class ApprovalNeeded(DomainError):
    """The change is above the organisation's spending policy: an approver must allow it."""

    code = "approval_needed"

    def __init__(self, spend: Spend, reasons: list[str], policy: PolicyView) -> None:
        super().__init__(_("{what} needs an approver: ", what=spend.what) + " ".join(reasons))
        self.spend = spend
        self.reasons = reasons
        self.policy = policy


def _amount(value: Any) -> Decimal | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        amount = Decimal(str(value).strip().replace(",", ""))
    except InvalidOperation:
        raise InvalidInput(_("{value!r} is not an amount (for example 500 or 1250.50).", value=value)) from None
    if not amount.is_finite() or amount < 0:
        raise InvalidInput(_("An amount is 0 or more."))
    return amount


def _view(row: SpendingPolicy | None) -> PolicyView:
    if row is None:
        return NO_POLICY
    return PolicyView(
        row.currency, _amount(row.monthly_threshold), row.commitments_need_approval, _amount(row.annual_limit)
    )


class SpendingPolicies:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], pricing: PriceBook) -> None:
        self._sessions = sessions
        self._pricing = pricing

    async def get(self, organisation_id: int) -> PolicyView:
        async with self._sessions() as session:
            return _view(await session.get(SpendingPolicy, organisation_id))

    async def set(
        self,
        slug: str,
        *,
        actor: str,
        monthly_threshold: Any = UNCHANGED,
        commitments_need_approval: Any = UNCHANGED,
        annual_limit: Any = UNCHANGED,
        currency: Any = UNCHANGED,
    ) -> PolicyView:
        """The operator's setting; only what is given changes ("" or None: no threshold / limit)."""
        async with self._sessions() as session:
            org = await session.scalar(select(Organisation).where(Organisation.slug == slug.strip().lower()))
            if org is None:
                raise NotFound(_("No organisation {slug!r}.", slug=slug))
            row = await session.get(SpendingPolicy, org.id)
            before = _view(row).as_dict()
            if row is None:
                row = SpendingPolicy(
                    organisation_id=org.id,
                    currency="USD",
                    monthly_threshold="",
                    commitments_need_approval=False,
                    annual_limit="",
                )
                session.add(row)
            if monthly_threshold is not UNCHANGED:
                amount = _amount(monthly_threshold)
                row.monthly_threshold = "" if amount is None else str(amount)
            if annual_limit is not UNCHANGED:
                amount = _amount(annual_limit)
                row.annual_limit = "" if amount is None else str(amount)
            if commitments_need_approval is not UNCHANGED:
                row.commitments_need_approval = bool(commitments_need_approval)
            if currency is not UNCHANGED:
                code = str(currency or "").strip().upper()
                if len(code) != 3 or not code.isalpha():
                    raise InvalidInput(_("The currency is a three-letter code, e.g. USD or EUR."))
                row.currency = code
            row.updated_by = actor
            after = _view(row)
            audit.record(
                session,
                actor=actor,
                action="spending.policy",
                organisation_id=org.id,
                before=before,
                after=after.as_dict(),
            )
            await session.commit()
            return after

    async def reasons(self, organisation_id: int, spend: Spend) -> tuple[list[str], PolicyView]:
        """Why `spend` needs an approver under the organisation's policy (empty: it does not)."""
        policy = await self.get(organisation_id)
        reasons: list[str] = []
        if policy.is_empty or (spend.monthly_increase <= 0 and spend.term_duration not in COMMITMENTS):
            return reasons, policy
        if spend.currency and spend.currency != policy.currency and not policy.is_empty:
            reasons.append(
                _(
                    "It is priced in {currency}, and the policy in {currency2}.",
                    currency=spend.currency,
                    currency2=policy.currency,
                )
            )
            return reasons, policy
        if policy.monthly_threshold is not None and spend.monthly_increase > policy.monthly_threshold:
            reasons.append(
                _(
                    "It adds {money} a month, over the {money2} threshold.",
                    money=formatting.money(spend.monthly_increase, spend.currency),
                    money2=formatting.money(policy.monthly_threshold, policy.currency),
                )
            )
        if policy.commitments_need_approval and spend.term_duration in COMMITMENTS:
            reasons.append(_("It commits to {get}.", get=_(_TERMS.get(spend.term_duration, spend.term_duration))))
        if policy.annual_limit is not None and spend.monthly_increase > 0:
            now = await self.annual_run_rate(organisation_id)
            after = now + spend.monthly_increase * 12
            if after > policy.annual_limit:
                reasons.append(
                    _(
                        "It takes the yearly spending to {money}, over the {money2} limit.",
                        money=formatting.money(after, spend.currency),
                        money2=formatting.money(policy.annual_limit, policy.currency),
                    )
                )
        return reasons, policy

    async def require(self, organisation_id: int, spend: Spend) -> None:
        reasons, policy = await self.reasons(organisation_id, spend)
        if reasons:
            raise ApprovalNeeded(spend, reasons, policy)

    async def annual_run_rate(self, organisation_id: int, *, on: date | None = None) -> Decimal:
        """What the organisation's live subscriptions cost a year at the reseller's prices now."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(SubscriptionRow).where(
                        SubscriptionRow.organisation_id == organisation_id, SubscriptionRow.status.in_(LIVE)
                    )
                )
            )
        total = Decimal(0)
        day = on or utcnow().date()
        for row in rows:
            price = await self._pricing.price_for(
                organisation_id, row.product_id, row.sku_id, row.term_duration, row.billing_cycle, day
            )
            if price is not None:
                total += per_month(price.amount, price.currency, row.billing_cycle) * row.quantity * 12
        return total
