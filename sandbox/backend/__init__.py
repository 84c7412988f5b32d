"""The sandbox's rules: customers, agreements, carts, subscriptions, users, licences and audit.

One module per resource (`customers`, `agreements`, `orders`, `subscriptions`, `terms`, `users`,
`licences`, `audit`; what they share is in `core`), composed by `SandboxBackend`. Every operation
runs inside `SandboxBackend.transaction()`: one asyncio lock (the sandbox is a single process;
serialising its writes keeps every rule simple and race-free) and one database transaction. Before
anything else a transaction moves subscriptions whose term has ended (renewal, expiry, end of a
non-renewing term), so moving the clock is enough to see Microsoft's lifecycle. Every mutation
writes an audit record in Microsoft's AuditRecord shape.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from sandbox.backend.agreements import Agreements
from sandbox.backend.audit import AuditLog
from sandbox.backend.core import (
    CALLERS_PASSWORD,
    GENERATED_PASSWORD,
    Actor,
    Core,
    SandboxSettings,
    as_dict,
    as_text,
    new_password,
    normalise,
    withhold_passwords,
)
from sandbox.backend.customers import Customers
from sandbox.backend.licences import Licences
from sandbox.backend.orders import Orders
from sandbox.backend.subscriptions import Subscriptions
from sandbox.backend.terms import Terms, TermSummary
from sandbox.backend.users import Users
from sandbox.catalog import Catalog
from sandbox.clock import SandboxClock
from sandbox.resources import user_json
from sandbox.store import Store, Unit
from services.db import SANDBOX_START_LOCK, exclusive

__all__ = ["Actor", "SandboxBackend", "SandboxSettings", "TermSummary", "normalise", "withhold_passwords"]


class SandboxBackend:
    """Partner Center's behaviour over the sandbox store: one object per resource (`customers`,
    `agreements`, `orders`, `subscriptions`, `users`, `licences`, `audit`), whose methods handlers
    call inside `transaction()`; they return wire JSON or raise `SandboxError`."""

    def __init__(self, store: Store, catalog: Catalog, clock: SandboxClock, settings: SandboxSettings) -> None:
        self.core = Core(store, catalog, clock, settings)
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.settings = settings
        self._lock = asyncio.Lock()
        self.terms = Terms(self.core)
        self.users = Users(self.core)
        self.customers = Customers(self.core, self.users)
        self.agreements = Agreements(self.core)
        self.licences = Licences(self.core, self.users)
        self.subscriptions = Subscriptions(self.core, self.licences)
        self.orders = Orders(self.core, self.terms)
        self.audit = AuditLog(self.core)

    async def start(self, *, restore_clock: bool) -> None:
        """Create tables, seed taken domains, restore a persisted clock, find the next term end.
        Sandboxes starting together on one database (bot replicas) do this one at a time."""
        async with exclusive(self.store.engine, SANDBOX_START_LOCK):
            await self.store.create_tables()
            async with self._lock, self.store.unit(self.clock.now()) as tx:
                for domain in self.settings.seeded_domains:
                    if await tx.get("domain", domain.lower()) is None:
                        await tx.put("domain", domain.lower(), {"domain": domain.lower(), "customerId": None})
                if restore_clock:
                    state = await tx.get("setting", "clock")
                    if state is not None:
                        self.clock.restore(state)
                await self.terms.refresh(tx)

    async def save_clock(self) -> None:
        async with self._lock, self.store.unit(self.clock.now()) as tx:
            await tx.put("setting", "clock", self.clock.state())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Unit]:
        """The lock and a database transaction; due term ends are processed first."""
        async with self._lock:
            now = self.clock.now()
            async with self.store.unit(now) as tx:
                due = self.terms.next_term_end
                if due is not None and now >= due:
                    await self.terms.roll(tx, now)
                yield tx

    async def roll_terms(self) -> TermSummary:
        """Process every term that has ended by now (the admin clock calls this after a move)."""
        async with self._lock:
            now = self.clock.now()
            async with self.store.unit(now) as tx:
                return await self.terms.roll(tx, now)

    def elsewhere_actor(self, customer: dict[str, Any]) -> Actor:
        """Who a change made outside Partner Center is audited as (the customer's own admin)."""
        return self.core.elsewhere_actor(customer)

    async def idempotent(
        self,
        tx: Unit,
        key: str | None,
        produce: Callable[[], Awaitable[tuple[int, dict[str, Any]]]],
        *,
        sent: Any = None,
    ) -> tuple[int, dict[str, Any]]:
        """Microsoft's idempotency: a repeated POST with the same MS-RequestId answers the first
        success again instead of doing the work twice. Stored in the same transaction as the work,
        without the passwords it carried (`withhold_passwords`); `sent` is the repeated request's body."""
        if key is not None:
            key = hashlib.sha256(key.encode()).hexdigest()  # request ids are the caller's: bound their length
            stored = await tx.get("idempotency", key)
            if stored is not None:
                body = await self.restore_passwords(tx, dict(stored["body"]), stored.get("withheld", []), sent)
                return int(stored["status"]), body
        status, body = await produce()
        if key is not None:
            kept, withheld = withhold_passwords(body)
            await tx.put("idempotency", key, {"status": status, "body": kept, "withheld": withheld})
        return status, body

    async def restore_passwords(self, tx: Unit, body: dict[str, Any], withheld: list[str], sent: Any) -> dict[str, Any]:
        """A stored answer made whole again for a repeated request. The password the caller chose is
        the one its repeated request carries. The one Microsoft generated for a new tenant's first
        admin was never stored, so the admin gets a new one — as if reset, and audited so — and the
        answer carries that: a request is only repeated when its first answer was lost, so nobody
        holds the first password, and the one returned is the one that works."""
        if GENERATED_PASSWORD in withheld:
            password = await self._reset_first_admin_password(tx, body)
            if password is not None:
                body["userCredentials"] = {**as_dict(body.get("userCredentials")), "password": password}
        if CALLERS_PASSWORD in withheld:
            chosen = as_text(as_dict(as_dict(normalise(sent)).get("passwordProfile")).get("password"))
            if chosen:
                body["passwordProfile"] = {**as_dict(body.get("passwordProfile")), "password": chosen}
        return body

    async def _reset_first_admin_password(self, tx: Unit, answer: dict[str, Any]) -> str | None:
        customer = await tx.get("customer", as_text(answer.get("id")).lower())
        upn = as_text(as_dict(answer.get("userCredentials")).get("userName")).lower()
        if customer is None or not upn:
            return None
        admins = [
            user
            for user in await tx.find("user", customer_id=customer["id"], where={"userPrincipalName": upn})
            if user["state"] == "active"
        ]
        if not admins:
            return None
        await self.core.audit(
            tx,
            customer,
            "customer_user",
            "update_customer_user_password",
            user_json(admins[0]),
            data={"CustomerUserId": admins[0]["id"]},
        )
        return new_password()
