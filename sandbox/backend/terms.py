"""Term ends: renewal (applying scheduled changes), expiry of a suspended or non-renewing term.

`SandboxBackend.transaction()` runs `roll` first whenever the clock has passed `next_term_end`, so
moving the clock is enough to see Microsoft's lifecycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sandbox.backend.core import CANCELLATION_WINDOW_DAYS, LIVE, REFUND_WINDOW, Actor, Core, Resource
from sandbox.clock import commitment_end, iso, parse_instant, start_of_day, term_end_instant
from sandbox.resources import subscription_json
from sandbox.store import Unit


@dataclass
class TermSummary:
    renewed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {"renewed": self.renewed, "expiredSuspended": self.expired, "endedNotRenewing": self.ended}


class Terms(Resource):
    """Keeps the earliest term end of a live subscription, so a transaction knows when to roll."""

    def __init__(self, core: Core) -> None:
        super().__init__(core)
        self.next_term_end: datetime | None = None

    def note_term_end(self, subscription: dict[str, Any]) -> None:
        end = term_end_instant(parse_instant(subscription["commitmentEndDate"]))
        if self.next_term_end is None or end < self.next_term_end:
            self.next_term_end = end

    async def refresh(self, tx: Unit) -> None:
        ends = [
            term_end_instant(parse_instant(s["commitmentEndDate"]))
            for s in await tx.documents("subscription")
            if s["status"] in LIVE
        ]
        self.next_term_end = min(ends) if ends else None

    async def roll(self, tx: Unit, now: datetime) -> TermSummary:
        summary = TermSummary()
        customers: dict[str, dict[str, Any]] = {}
        for subscription in await tx.documents("subscription"):
            if subscription["status"] not in LIVE:
                continue
            changed = False
            while subscription["status"] in LIVE:
                end = term_end_instant(parse_instant(subscription["commitmentEndDate"]))
                if end > now:
                    break
                before = subscription_json(self.catalog, subscription, end)
                if subscription["status"] == "suspended":
                    subscription["status"], reason = "expired", "SuspendedAtTermEnd"
                    summary.expired.append(subscription["id"])
                elif not subscription["autoRenewEnabled"]:
                    subscription["status"], reason = "expired", "AutoRenewDisabled"
                    summary.ended.append(subscription["id"])
                else:
                    self._renew(subscription, end)
                    reason = "Renewed"
                    summary.renewed.append(subscription["id"])
                subscription["version"] += 1
                changed = True
                customer = customers.get(subscription["customerId"]) or await tx.get(
                    "customer", subscription["customerId"]
                )
                if customer is not None:
                    customers[customer["id"]] = customer
                await self.core.audit(
                    tx,
                    customer,
                    "subscription",
                    "update_subscription",
                    subscription_json(self.catalog, subscription, end),
                    old_value=before,
                    data={"SubscriptionId": subscription["id"], "Reason": reason},
                    actor=Actor("system", "Microsoft commerce (term end)"),
                    at=end,
                )
            if changed:
                await tx.put("subscription", subscription["id"], subscription, customer_id=subscription["customerId"])
        await self.refresh(tx)
        return summary

    def _renew(self, subscription: dict[str, Any], renewal: datetime) -> None:
        """A new term from the old term's end, applying scheduledNextTermInstructions, with a new
        cancellation window and every seat refundable again for 168 hours."""
        instructions = subscription.get("scheduledNextTermInstructions") or {}
        product = instructions.get("product") or {}
        if product.get("skuId") and self.catalog.find_sku(subscription["productId"], product["skuId"]):
            ref = self.catalog.sku(subscription["productId"], product["skuId"])
            subscription["skuId"] = ref.sku["id"]
            subscription["offerName"] = ref.sku["title"]
            subscription["provisioningId"] = ref.sku["provisioningId"]
        if product.get("termDuration"):
            subscription["termDuration"] = product["termDuration"]
        if product.get("billingCycle"):
            subscription["billingCycle"] = str(product["billingCycle"]).lower()
        if instructions.get("quantity"):
            subscription["quantity"] = int(instructions["quantity"])
        start = start_of_day(renewal)
        subscription["effectiveStartDate"] = iso(start)
        subscription["commitmentEndDate"] = iso(commitment_end(start, subscription["termDuration"]))
        subscription["cancellationAllowedUntilDate"] = iso(renewal + timedelta(days=CANCELLATION_WINDOW_DAYS))
        subscription["refundable"] = [
            {"quantity": subscription["quantity"], "allowedUntil": iso(renewal + REFUND_WINDOW)}
        ]
        subscription["scheduledNextTermInstructions"] = None
