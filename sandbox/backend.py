"""The sandbox's rules: customers, agreements, carts, subscriptions, users, licences and audit.

Every operation runs inside `SandboxBackend.transaction()`: one asyncio lock (the sandbox is a
single process; serialising its writes keeps every rule simple and race-free) and one database
transaction. Before anything else a transaction moves subscriptions whose term has ended (renewal,
expiry, end of a non-renewing term), so moving the clock is enough to see Microsoft's lifecycle.
Every mutation writes an audit record in Microsoft's AuditRecord shape.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import string
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sandbox import errors as codes
from sandbox.catalog import Catalog, SkuRef
from sandbox.clock import (
    SandboxClock,
    commitment_end,
    iso,
    parse_instant,
    start_of_day,
    term_end_instant,
)
from sandbox.countries import check_new_customer, rules_for
from sandbox.errors import SandboxError, invalid_input, invalid_property, not_found
from sandbox.resources import (
    MCA_LINK,
    MCA_TEMPLATE_ID,
    agreement_json,
    cart_json,
    collection,
    customer_json,
    etag,
    license_json,
    order_json,
    refundable_details,
    subscribed_sku_json,
    subscription_json,
    user_json,
)
from sandbox.store import Store, Unit
from services.db import SANDBOX_START_LOCK, exclusive

SEEDED_DOMAINS = (
    "contoso.onmicrosoft.com",
    "fabrikam.onmicrosoft.com",
    "northwindtraders.onmicrosoft.com",
    "adventureworks.onmicrosoft.com",
    "wingtiptoys.onmicrosoft.com",
    "tailspintoys.onmicrosoft.com",
    "litwareinc.onmicrosoft.com",
    "woodgrovebank.onmicrosoft.com",
    "relecloud.onmicrosoft.com",
    "alpineskihouse.onmicrosoft.com",
    "microsoft.onmicrosoft.com",
)
REFUND_WINDOW = timedelta(hours=168)
CANCELLATION_WINDOW_DAYS = 7
# Seats, scheduled changes and auto-renew are locked in the last 24 hours before a term's renewal.
RENEWAL_LOCK = timedelta(hours=24)
LIVE = ("active", "suspended")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


@dataclass(frozen=True)
class SandboxSettings:
    """Knobs of the simulator; the defaults serve the embedded mode."""

    partner_id: str = "4f4e3c51-8a43-4c7e-9d5e-7b1f0a6c2d90"
    partner_user: str = "admin@sandboxpartner.onmicrosoft.com"
    application_id: str = "Partner Center API (sandbox)"
    throttle_enabled: bool = False
    throttle_capacity: int = 50
    throttle_refill_per_second: float = 10.0
    availability_salt: str | None = None
    fault_seed: int | None = None
    faults: tuple[dict[str, Any], ...] = ()
    seeded_domains: tuple[str, ...] = SEEDED_DOMAINS
    cart_lifetime: timedelta = timedelta(minutes=15)  # as in the reference example
    users_page_size: int = 100
    max_page_size: int = 500
    suspend_only_in_cancellation_window: bool = False


@dataclass(frozen=True)
class Actor:
    """Who performed a mutation, as the audit record names them."""

    user_principal_name: str
    application_id: str


@dataclass
class TermSummary:
    renewed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    ended: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, list[str]]:
        return {"renewed": self.renewed, "expiredSuspended": self.expired, "endedNotRenewing": self.ended}


def normalise(value: Any) -> Any:
    """Microsoft accepts PascalCase or camelCase input: first letters of keys are lowered."""
    if isinstance(value, dict):
        return {
            (key[:1].lower() + key[1:] if isinstance(key, str) else key): normalise(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalise(item) for item in value]
    return value


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid_input(f"{name} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise invalid_input(f"{name} must be a whole number") from None
    if isinstance(value, float) and value != number:
        raise invalid_input(f"{name} must be a whole number")
    return number


def _password() -> str:
    """A strong random password: 16 characters from every class, like the ones Microsoft generates."""
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*-_=+?")
    chars = [secrets.choice(group) for group in classes]
    chars += [secrets.choice("".join(classes)) for _ in range(12)]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def _strong(password: str) -> bool:
    classes = (
        any(c.isupper() for c in password),
        any(c.islower() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    )
    return len(password) >= 8 and sum(classes) >= 3


# The passwords an answer can carry: the one Microsoft generates for a new tenant's first admin, and
# the one a new user was created with (the caller's own, echoed back).
GENERATED_PASSWORD = "userCredentials.password"
CALLERS_PASSWORD = "passwordProfile.password"


def withhold_passwords(answer: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The answer as it may be stored — without its passwords — and which passwords were taken out
    (`SandboxBackend.restore_passwords` puts them back for a repeated request)."""
    kept = dict(answer)
    withheld: list[str] = []
    for path in (GENERATED_PASSWORD, CALLERS_PASSWORD):
        parent, field_name = path.split(".")
        holder = kept.get(parent)
        if isinstance(holder, dict) and field_name in holder:
            kept[parent] = {key: value for key, value in holder.items() if key != field_name}
            withheld.append(path)
    return kept, withheld


def encode_token(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode()


def decode_token(token: str, scope: str) -> int:
    """The offset inside an opaque continuation token, checked against the listing it belongs to."""
    try:
        payload = json.loads(base64.urlsafe_b64decode(token.encode()))
        offset = int(payload["o"])
    except (ValueError, KeyError, TypeError):
        raise invalid_input("the continuation token is not valid") from None
    if payload.get("s") != scope or offset < 0:
        raise invalid_input("the continuation token does not belong to this listing")
    return offset


class SandboxBackend:
    """Partner Center's behaviour over the sandbox store. Handlers call these methods inside
    `transaction()`; the methods return wire JSON or raise `SandboxError`."""

    def __init__(self, store: Store, catalog: Catalog, clock: SandboxClock, settings: SandboxSettings) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.settings = settings
        self._lock = asyncio.Lock()
        self._next_term_end: datetime | None = None
        self.partner_actor = Actor(settings.partner_user, settings.application_id)

    # infrastructure --------------------------------------------------------------------------

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
                await self._refresh_next_term_end(tx)

    async def save_clock(self) -> None:
        async with self._lock, self.store.unit(self.clock.now()) as tx:
            await tx.put("setting", "clock", self.clock.state())

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Unit]:
        """The lock and a database transaction; due term ends are processed first."""
        async with self._lock:
            now = self.clock.now()
            async with self.store.unit(now) as tx:
                if self._next_term_end is not None and now >= self._next_term_end:
                    await self._roll_terms(tx, now)
                yield tx

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
                body["userCredentials"] = {**_dict(body.get("userCredentials")), "password": password}
        if CALLERS_PASSWORD in withheld:
            chosen = _text(_dict(_dict(normalise(sent)).get("passwordProfile")).get("password"))
            if chosen:
                body["passwordProfile"] = {**_dict(body.get("passwordProfile")), "password": chosen}
        return body

    async def _reset_first_admin_password(self, tx: Unit, answer: dict[str, Any]) -> str | None:
        customer = await tx.get("customer", _text(answer.get("id")).lower())
        upn = _text(_dict(answer.get("userCredentials")).get("userName")).lower()
        if customer is None or not upn:
            return None
        admins = [
            user
            for user in await tx.find("user", customer_id=customer["id"], where={"userPrincipalName": upn})
            if user["state"] == "active"
        ]
        if not admins:
            return None
        await self._audit(
            tx,
            customer,
            "customer_user",
            "update_customer_user_password",
            user_json(admins[0]),
            data={"CustomerUserId": admins[0]["id"]},
        )
        return _password()

    async def _audit(
        self,
        tx: Unit,
        customer: dict[str, Any] | None,
        resource_type: str,
        operation_type: str,
        new_value: Any,
        *,
        old_value: Any = None,
        data: dict[str, Any] | None = None,
        actor: Actor | None = None,
        at: datetime | None = None,
    ) -> None:
        """`at`: when Microsoft did it, if not now (a term end processed after the clock jumped past it)."""
        now = at or self.clock.now()
        who = actor or self.partner_actor
        record = {
            "id": str(uuid.uuid4()),
            "partnerId": self.settings.partner_id,
            "customerId": customer["id"] if customer else None,
            "customerName": customer["billingProfile"].get("companyName") if customer else None,
            "userPrincipalName": who.user_principal_name,
            "applicationId": who.application_id,
            "resourceType": resource_type,
            "resourceOldValue": json.dumps(old_value) if old_value is not None else None,
            "resourceNewValue": json.dumps(new_value) if new_value is not None else None,
            "operationType": operation_type,
            "operationDate": iso(now),
            "operationStatus": "succeeded",
            "customizedData": [
                {"key": key, "value": None if value is None else str(value)} for key, value in (data or {}).items()
            ],
            "attributes": {"objectType": "AuditRecord"},
        }
        await tx.add_audit(record, operation_date=now)

    def elsewhere_actor(self, customer: dict[str, Any]) -> Actor:
        return Actor(f"admin@{customer['domain']}", "Microsoft 365 admin center")

    # customers -------------------------------------------------------------------------------

    async def domain_taken(self, tx: Unit, domain: str) -> bool:
        return await tx.get("domain", domain.strip().lower()) is not None

    async def customer(self, tx: Unit, customer_id: str) -> dict[str, Any]:
        customer = await tx.get("customer", customer_id.lower())
        if customer is None:
            raise not_found(codes.TENANT_NOT_FOUND, f"Tenant {customer_id} was not found.")
        return customer

    async def create_customer(self, tx: Unit, raw: Any) -> dict[str, Any]:
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a Customer")
        company, billing = _dict(body.get("companyProfile")), _dict(body.get("billingProfile"))
        domain = check_new_customer(company, billing)
        if await self.domain_taken(tx, domain):
            raise invalid_property("DomainNotAvailable", f"The domain {domain} is not available.", status=409)
        address = _dict(billing.get("defaultAddress"))
        rules = rules_for(_text(address.get("country"))) or {}
        culture = next(
            (c for c in rules.get("supportedCulturesList", []) if c.lower() == _text(billing.get("culture")).lower()),
            _text(billing.get("culture")),
        )
        customer = await self._new_customer(
            tx,
            customer_id=str(uuid.uuid4()),
            domain=domain,
            billing={
                "id": str(uuid.uuid4()),
                "email": _text(billing.get("email")),
                "culture": culture,
                "language": _text(billing.get("language")).lower(),
                "companyName": _text(billing.get("companyName")),
                "defaultAddress": {
                    key: (value.upper() if key in ("country", "state") else value)
                    for key, value in address.items()
                    if isinstance(value, str) and value.strip()
                },
            },
            registration=_text(company.get("organizationRegistrationNumber")) or None,
            relationship="reseller",
        )
        password = _password()
        admin = await self._new_user(
            tx,
            customer,
            upn=f"admin@{domain}",
            first=_text(address.get("firstName")),
            last=_text(address.get("lastName")),
            display=customer["billingProfile"]["companyName"],
            usage_location=_text(address.get("country")).upper(),
        )
        await self._audit(
            tx,
            customer,
            "customer",
            "add_customer",
            customer_json(customer),
            data={"CustomerId": customer["id"], "Domain": domain, "AdminUserId": admin["id"]},
        )
        return customer_json(customer, credentials={"userName": admin["userPrincipalName"], "password": password})

    async def _new_customer(
        self,
        tx: Unit,
        *,
        customer_id: str,
        domain: str,
        billing: dict[str, Any],
        registration: str | None,
        relationship: str,
    ) -> dict[str, Any]:
        customer: dict[str, Any] = {
            "id": customer_id.lower(),
            "commerceId": str(uuid.uuid4()),
            "domain": domain,
            "billingProfile": billing,
            "billingEtag": str(secrets.randbelow(10**18)),
            "organizationRegistrationNumber": registration,
            "relationshipToPartner": relationship,
            "agreements": [],
            "createdAt": iso(self.clock.now()),
        }
        await tx.put("customer", customer["id"], customer, customer_id=customer["id"])
        await tx.put("domain", domain, {"domain": domain, "customerId": customer["id"]})
        return customer

    async def accept_relationship(self, tx: Unit, raw: Any) -> dict[str, Any]:
        """A pending reseller relationship accepted by the customer's admin: the tenant becomes a
        customer (its admin user exists already; it has not attested the MCA yet)."""
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be {tenantId, companyName, domain}")
        tenant_id, company, domain = (_text(body.get(key)) for key in ("tenantId", "companyName", "domain"))
        domain = domain.lower()
        if not _GUID.match(tenant_id) or not company or not domain.endswith(".onmicrosoft.com"):
            raise invalid_input("tenantId (a GUID), companyName and domain (<name>.onmicrosoft.com) are required")
        if await tx.get("customer", tenant_id.lower()) is not None:
            raise SandboxError(409, codes.INVALID_PROPERTY, f"Tenant {tenant_id} is already a customer.")
        owner = await tx.get("domain", domain)
        if owner is not None and owner.get("customerId"):
            raise invalid_property("DomainNotAvailable", f"{domain} belongs to another customer.", status=409)
        country = (_text(body.get("country")) or "US").upper()
        customer = await self._new_customer(
            tx,
            customer_id=tenant_id,
            domain=domain,
            billing={
                "id": str(uuid.uuid4()),
                "email": _text(body.get("email")) or f"admin@{domain}",
                "culture": (rules_for(country) or {}).get("defaultCulture", "en-US"),
                "language": "en",
                "companyName": company,
                "defaultAddress": {"country": country},
            },
            registration=None,
            relationship="reseller",
        )
        await self._new_user(
            tx, customer, upn=f"admin@{domain}", first="", last="", display=company, usage_location=country
        )
        await self._audit(
            tx,
            customer,
            "partner_relationship",
            "create_partner_relationship",
            {"customerId": customer["id"], "relationshipType": "reseller"},
            data={"CustomerId": customer["id"]},
            actor=self.elsewhere_actor(customer),
        )
        return customer_json(customer)

    async def list_customers(
        self, tx: Unit, *, filter_text: str | None, size: int | None, token: str | None
    ) -> dict[str, Any]:
        customers = await tx.documents("customer")
        # The next link keeps the filter, or the following pages would list everyone.
        self_uri = f"/customers?filter={quote(filter_text, safe='')}" if filter_text else "/customers"
        if filter_text:
            try:
                spec = normalise(json.loads(filter_text))
            except ValueError:
                raise invalid_input("filter must be URL-encoded JSON") from None
            field_name, value = _text(_dict(spec).get("field")).lower(), _text(_dict(spec).get("value")).lower()
            if _text(_dict(spec).get("operator")).lower() != "starts_with":
                raise invalid_input('the only supported filter operator is "starts_with"')
            if field_name == "domain":
                customers = [c for c in customers if c["domain"].startswith(value)]
            elif field_name == "companyname":
                customers = [c for c in customers if c["billingProfile"]["companyName"].lower().startswith(value)]
            else:
                raise invalid_input("filter Field must be Domain or CompanyName")
        return self._page([customer_json(c) for c in customers], self_uri, "customers", size, token)

    def _page(
        self,
        items: list[dict[str, Any]],
        self_uri: str,
        scope: str,
        size: int | None,
        token: str | None,
        render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """One page of a listing; `links.next` repeats the listing uri with a continuation token.
        `render` turns stored documents into wire JSON for the page's items only."""
        limit = self.settings.max_page_size if not size or size <= 0 else min(size, self.settings.max_page_size)
        offset = decode_token(token, scope) if token else 0
        page = items[offset : offset + limit]
        if render is not None:
            page = [render(item) for item in page]
        more = offset + limit < len(items)
        separator = "&" if "?" in self_uri else "?"
        next_uri = f"{self_uri}{separator}size={limit}&seekOperation=Next" if more else None
        return collection(
            page, self_uri, next_uri=next_uri, token=encode_token({"s": scope, "o": offset + limit}) if more else None
        )

    # agreements ------------------------------------------------------------------------------

    def agreement_metadata(self, agreement_type: str | None) -> dict[str, Any]:
        items = []
        if (agreement_type or "MicrosoftCloudAgreement") in ("MicrosoftCustomerAgreement", "*"):
            items.append(
                {
                    "templateId": MCA_TEMPLATE_ID,
                    "agreementType": "MicrosoftCustomerAgreement",
                    "agreementLink": MCA_LINK,
                    "versionRank": 0,
                    "attributes": {"objectType": "AgreementMetaData"},
                }
            )
        return collection(items, f"/agreements?agreementType={agreement_type or ''}")

    async def add_agreement(self, tx: Unit, customer_id: str, raw: Any) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be an Agreement")
        contact = _dict(body.get("primaryContact"))
        if _text(body.get("templateId")).lower() != MCA_TEMPLATE_ID:
            raise invalid_property("TemplateId", "The templateId must be the Microsoft Customer Agreement's.")
        if _text(body.get("type") or "MicrosoftCustomerAgreement") != "MicrosoftCustomerAgreement":
            raise invalid_property("Type", "The type must be MicrosoftCustomerAgreement.")
        missing = [name for name in ("firstName", "lastName", "email") if not _text(contact.get(name))]
        if missing:
            raise invalid_property("PrimaryContact", f"primaryContact needs {', '.join(missing)}.")
        try:
            agreed = parse_instant(_text(body.get("dateAgreed")))
        except ValueError:
            raise invalid_property("DateAgreed", "dateAgreed must be a UTC date-time.") from None
        agreement = {
            "userId": str(uuid.uuid4()),
            "primaryContact": {
                key: _text(contact.get(key)) for key in ("firstName", "lastName", "email", "phoneNumber")
            },
            "templateId": MCA_TEMPLATE_ID,
            "dateAgreed": iso(agreed),
            "type": "MicrosoftCustomerAgreement",
        }
        customer["agreements"].append(agreement)
        await tx.put("customer", customer["id"], customer, customer_id=customer["id"])
        await self._audit(tx, customer, "customer", "create_customer_agreement", agreement, data={"Type": "MCA"})
        return agreement_json(agreement)

    async def agreements(self, tx: Unit, customer_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        return collection(
            [agreement_json(a) for a in customer["agreements"]], f"/customers/{customer['id']}/agreements"
        )

    # carts and orders ------------------------------------------------------------------------

    async def create_cart(self, tx: Unit, customer_id: str, raw: Any) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        body = normalise(raw)
        lines = _dict(body).get("lineItems") if isinstance(body, dict) else None
        if not isinstance(lines, list) or not lines:
            raise invalid_input("a cart needs lineItems")
        now = self.clock.now()
        subscriptions = await tx.documents("subscription", customer_id=customer["id"])
        cycles: list[str] = []
        items = []
        for index, raw_line in enumerate(lines):
            line = _dict(raw_line)
            ref, duration = self.catalog.resolve(_text(line.get("catalogItemId")), now)
            term = _text(line.get("termDuration")).upper() or duration
            cycle = _text(line.get("billingCycle")).lower()
            if term != duration or not ref.supports(term, cycle):
                raise SandboxError(
                    400,
                    codes.CART_ITEM_ERROR,
                    "Error in Cart item(s)",
                    [f"lineItem {index}: {ref.key} is not sold with term {term or '?'} billed {cycle or '?'}"],
                )
            quantity = _int(line.get("quantity"), "quantity")
            self._check_range(ref, quantity)
            self._check_pool(ref, subscriptions, quantity)
            context = {k: v for k, v in _dict(line.get("provisioningContext")).items() if isinstance(v, str)}
            self._check_parent(ref, subscriptions, context.get("parentSubscriptionId"))
            if cycle not in cycles:
                cycles.append(cycle)
            items.append(
                {
                    "id": _int(line.get("id", index), "id"),
                    "catalogItemId": _text(line.get("catalogItemId")),
                    "friendlyName": _text(line.get("friendlyName")) or ref.sku["title"],
                    "quantity": quantity,
                    "currencyCode": self.catalog.currency,
                    "billingCycle": cycle,
                    "termDuration": term,
                    "provisioningContext": context,
                    "orderGroup": str(cycles.index(cycle)),
                }
            )
        cart = {
            "id": str(uuid.uuid4()),
            "customerId": customer["id"],
            "creationTimestamp": iso(now),
            "lastModifiedTimestamp": iso(now),
            "expirationTimestamp": iso(now + self.settings.cart_lifetime),
            "lastModifiedUser": self.settings.partner_user,
            "status": "Active",
            "lineItems": items,
            "orderIds": [],
        }
        await tx.put("cart", cart["id"], cart, customer_id=customer["id"])
        await self._audit(tx, customer, "cart", "create_cart", cart_json(cart), data={"CartId": cart["id"]})
        return cart_json(cart)

    def _check_range(self, ref: SkuRef, quantity: int) -> None:
        low, high = ref.sku["minimumQuantity"], ref.sku["maximumQuantity"]
        if not low <= quantity <= high:
            raise SandboxError(
                400,
                codes.QUANTITY_OUT_OF_RANGE,
                "Subscription quantity is not within minimum and maximum allowed quantity",
                [f"{ref.key} allows {low} to {high} licences; {quantity} was asked."],
            )

    def _check_pool(self, ref: SkuRef, subscriptions: list[dict[str, Any]], extra: int) -> None:
        """Seat maximums are pooled per customer across subscriptions of the same product SKU."""
        held = sum(
            s["quantity"]
            for s in subscriptions
            if s["status"] in LIVE and f"{s['productId']}:{s['skuId']}".upper() == ref.key.upper()
        )
        remaining = ref.sku["maximumQuantity"] - held
        if extra > remaining:
            raise SandboxError(
                403,
                codes.SEAT_LIMIT_EXCEEDED,
                f"The requested number of {extra} seat/s exceeded the remaining limit of {max(remaining, 0)} seats "
                f"allowed per subscription for the CatalogID - {ref.key}",
            )

    def _check_parent(self, ref: SkuRef, subscriptions: list[dict[str, Any]], parent_id: str | None) -> None:
        """Add-ons need an active base subscription of one of their prerequisite SKUs."""
        if not ref.sku["isAddon"]:
            return
        if not parent_id:
            raise SandboxError(
                400,
                codes.CART_ITEM_ERROR,
                "Error in Cart item(s)",
                [f"{ref.key} is an add-on: provisioningContext.ParentSubscriptionId is required."],
            )
        parent = next((s for s in subscriptions if s["id"].lower() == parent_id.lower()), None)
        if parent is None or f"{parent['productId']}:{parent['skuId']}".upper() not in {
            key.upper() for key in ref.sku["prerequisiteSkus"]
        }:
            raise SandboxError(
                400, codes.ADDON_NOT_RELATED, "The add-on is not related to the specified parent subscription"
            )
        if parent["status"] != "active":
            raise SandboxError(
                409,
                codes.PARENT_NOT_ACTIVE,
                "Cannot enable a child subscription, when the parent subscription is not Active",
            )

    async def cart(self, tx: Unit, customer_id: str, cart_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        cart = await tx.get("cart", cart_id.lower())
        if cart is None or cart["customerId"] != customer["id"]:
            raise not_found(codes.CART_NOT_FOUND, f"Cart {cart_id} was not found.")
        orders = [await tx.get("order", oid) for oid in cart.get("orderIds", [])]
        return cart_json(cart, [order_json(o, status="completed") for o in orders if o] if cart["orderIds"] else None)

    async def checkout(self, tx: Unit, customer_id: str, cart_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        cart = await tx.get("cart", cart_id.lower())
        if cart is None or cart["customerId"] != customer["id"]:
            raise not_found(codes.CART_NOT_FOUND, f"Cart {cart_id} was not found.")
        if cart["status"] != "Active":
            raise SandboxError(
                400, codes.CART_ALREADY_SUBMITTED, f"Cannot check out an already submitted cart {cart_id}."
            )
        now = self.clock.now()
        if now > parse_instant(cart["expirationTimestamp"]):
            raise invalid_input(f"cart {cart_id} expired at {cart['expirationTimestamp']}; create a new cart")
        if not customer["agreements"]:
            raise SandboxError(
                403,
                codes.AGREEMENT_MISSING,
                "Either a partner confirmation of the customer acceptance of the Microsoft Customer Agreement must be "
                "provided or the customer must accept the Microsoft Customer Agreement in the Microsoft Admin Center "
                "before you can complete this purchase",
            )
        subscriptions = await tx.documents("subscription", customer_id=customer["id"])
        orders: list[dict[str, Any]] = []
        order_errors: list[dict[str, Any]] = []
        groups: dict[str, list[dict[str, Any]]] = {}
        for line in cart["lineItems"]:
            groups.setdefault(line["orderGroup"], []).append(line)
        for group, lines in groups.items():
            order_id = secrets.token_hex(6)
            order_lines: list[dict[str, Any]] = []
            for line in lines:
                product_id, sku_id, availability = line["catalogItemId"].split(":")
                ref = self.catalog.sku(product_id, sku_id)
                try:
                    self._check_pool(ref, subscriptions, line["quantity"])
                    self._check_parent(ref, subscriptions, line["provisioningContext"].get("parentSubscriptionId"))
                except SandboxError as error:
                    order_errors.append({"orderGroupId": group, "code": error.code, "description": error.description})
                    continue
                subscription = self._new_subscription(customer, order_id, ref, availability, line, now)
                subscriptions.append(subscription)
                await tx.put("subscription", subscription["id"], subscription, customer_id=customer["id"])
                order_lines.append(
                    {
                        "lineItemNumber": len(order_lines),
                        "offerId": line["catalogItemId"],
                        "subscriptionId": subscription["id"],
                        "parentSubscriptionId": subscription["parentSubscriptionId"],
                        "termDuration": line["termDuration"],
                        "transactionType": "New",
                        "friendlyName": line["friendlyName"],
                        "quantity": line["quantity"],
                        "partnerIdOnRecord": None,
                        "provisioningContext": line["provisioningContext"],
                    }
                )
                self._note_term_end(subscription)
            if not order_lines:
                continue
            order = {
                "id": order_id,
                "customerId": customer["id"],
                "billingCycle": lines[0]["billingCycle"],
                "currencyCode": self.catalog.currency,
                "lineItems": order_lines,
                "creationDate": iso(now),
                "status": "pending",
                "cartId": cart["id"],
            }
            await tx.put("order", order_id, order, customer_id=customer["id"])
            rendered = order_json(order)
            orders.append(rendered)
            await self._audit(
                tx,
                customer,
                "order",
                "create_order",
                rendered,
                data={"OrderId": order_id, "BillingCycle": order["billingCycle"]}
                | {f"SubscriptionId-{line['lineItemNumber']}": line["subscriptionId"] for line in order_lines}
                | {f"Quantity-{line['lineItemNumber']}": line["quantity"] for line in order_lines},
            )
        cart["status"] = "Ordered"
        cart["orderIds"] = [order["id"] for order in orders]
        cart["lastModifiedTimestamp"] = iso(now)
        await tx.put("cart", cart["id"], cart, customer_id=customer["id"])
        return {"orders": orders, "orderErrors": order_errors, "attributes": {"objectType": "CartCheckoutResult"}}

    def _new_subscription(
        self,
        customer: dict[str, Any],
        order_id: str,
        ref: SkuRef,
        availability: str,
        line: dict[str, Any],
        now: datetime,
    ) -> dict[str, Any]:
        start = start_of_day(now)
        return {
            "id": str(uuid.uuid4()),
            "customerId": customer["id"],
            "orderId": order_id,
            "productId": ref.product["id"],
            "skuId": ref.sku["id"],
            "availabilityId": availability,
            "provisioningId": ref.sku["provisioningId"],
            "offerName": ref.sku["title"],
            "friendlyName": line["friendlyName"],
            "quantity": line["quantity"],
            "status": "active",
            "autoRenewEnabled": True,
            "billingCycle": line["billingCycle"],
            "termDuration": line["termDuration"],
            "creationDate": iso(now),
            "effectiveStartDate": iso(start),
            "commitmentEndDate": iso(commitment_end(start, line["termDuration"])),
            "cancellationAllowedUntilDate": iso(now + timedelta(days=CANCELLATION_WINDOW_DAYS)),
            "refundable": [{"quantity": line["quantity"], "allowedUntil": iso(now + REFUND_WINDOW)}],
            "scheduledNextTermInstructions": None,
            "parentSubscriptionId": line["provisioningContext"].get("parentSubscriptionId"),
            "suspensionReasons": [],
            "country": customer["billingProfile"].get("defaultAddress", {}).get("country", "US"),
            "version": 1,
        }

    async def order(self, tx: Unit, customer_id: str, order_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        order = await tx.get("order", order_id.lower())
        if order is None or order["customerId"] != customer["id"]:
            raise not_found(codes.ORDER_NOT_FOUND, f"Order {order_id} was not found.")
        return order_json(order, status="completed")

    # subscriptions ---------------------------------------------------------------------------

    async def _subscription(self, tx: Unit, customer: dict[str, Any], subscription_id: str) -> dict[str, Any]:
        subscription = await tx.get("subscription", subscription_id.lower())
        if subscription is None or subscription["customerId"] != customer["id"]:
            raise not_found(codes.SUBSCRIPTION_NOT_FOUND, f"Subscription with id {subscription_id} not found.")
        return subscription

    async def subscriptions(self, tx: Unit, customer_id: str, order_id: str | None) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        now = self.clock.now()
        items = await tx.documents("subscription", customer_id=customer["id"])
        if order_id:
            items = [s for s in items if s["orderId"] == order_id]
        return collection(
            [subscription_json(self.catalog, s, now) for s in items], f"/customers/{customer['id']}/subscriptions"
        )

    async def subscription(self, tx: Unit, customer_id: str, subscription_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        return subscription_json(
            self.catalog, await self._subscription(tx, customer, subscription_id), self.clock.now()
        )

    async def addons(self, tx: Unit, customer_id: str, subscription_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        base = await self._subscription(tx, customer, subscription_id)
        now = self.clock.now()
        items = [
            subscription_json(self.catalog, s, now)
            for s in await tx.documents("subscription", customer_id=customer["id"])
            if (s.get("parentSubscriptionId") or "").lower() == base["id"]
        ]
        return collection(items, f"/customers/{customer['id']}/subscriptions/{base['id']}/addons")

    async def update_subscription(
        self, tx: Unit, customer_id: str, subscription_id: str, raw: Any, if_match: str | None
    ) -> dict[str, Any]:
        """PATCH with the full resource: quantity, status, autoRenewEnabled and
        scheduledNextTermInstructions, under Microsoft's new-commerce rules."""
        customer = await self.customer(tx, customer_id)
        subscription = await self._subscription(tx, customer, subscription_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be the full Subscription resource")
        current_etag = etag(subscription["id"], subscription["version"])
        offered = (if_match or "").strip().strip('"') or _text(_dict(body.get("attributes")).get("etag"))
        if offered != current_etag:
            raise SandboxError(412, codes.ETAG_INVALID, "Etag is no longer valid")
        status = subscription["status"]
        if status not in LIVE:
            raise SandboxError(
                400,
                codes.SUBSCRIPTION_DELETED,
                f"Subscription with id {subscription['id']} and {status} status cannot be updated.",
            )
        now = self.clock.now()
        before = subscription_json(self.catalog, subscription, now)
        ref = self.catalog.sku(subscription["productId"], subscription["skuId"])
        target = _text(body.get("status")).lower() or status
        quantity = _int(body["quantity"], "quantity") if body.get("quantity") is not None else subscription["quantity"]
        scheduled_before = subscription.get("scheduledNextTermInstructions")
        moves_quantity = quantity != subscription["quantity"] and target != "deleted"
        auto_renew = body.get("autoRenewEnabled")
        moves_auto_renew = isinstance(auto_renew, bool) and auto_renew != subscription["autoRenewEnabled"]
        instructions = (
            self._instructions(ref, body["scheduledNextTermInstructions"])
            if "scheduledNextTermInstructions" in body
            else scheduled_before
        )
        # The full resource sent back with a mid-term quantity change carries what was scheduled: that
        # schedule is deleted by the change, not kept by it (only instructions that differ are new ones).
        schedules = instructions != scheduled_before
        if target != "deleted" and (moves_quantity or moves_auto_renew or schedules):
            self._check_not_locked(subscription, now)
        changes: dict[str, Any] = {}
        if target != status:
            await self._change_status(tx, customer, subscription, target, now)
            changes["Status"] = f"{status}->{target}"
        if moves_quantity:
            if status == "suspended" or target == "suspended":
                raise SandboxError(
                    400,
                    codes.SUBSCRIPTION_SUSPENDED_QUANTITY,
                    "Subscription quantity cannot be increased or decreased while subscription is being suspended",
                )
            await self._change_quantity(tx, customer, subscription, ref, quantity, now)
            changes["Quantity"] = f"{before['quantity']}->{quantity}"
            if scheduled_before is not None:
                # Microsoft: a mid-term (immediate) change deletes every change scheduled for the renewal.
                subscription["scheduledNextTermInstructions"] = None
                changes["ScheduledNextTermInstructions"] = json.dumps(None)
        if subscription["status"] == "deleted":
            pass  # a cancelled subscription keeps no renewal settings
        elif moves_auto_renew:
            subscription["autoRenewEnabled"] = auto_renew
            changes["AutoRenewEnabled"] = auto_renew
        if schedules and subscription["status"] == "active":
            subscription["scheduledNextTermInstructions"] = instructions
            changes["ScheduledNextTermInstructions"] = json.dumps(instructions)
        if isinstance(body.get("friendlyName"), str) and body["friendlyName"].strip() != subscription["friendlyName"]:
            subscription["friendlyName"] = body["friendlyName"].strip()
            changes["FriendlyName"] = subscription["friendlyName"]
        if not changes:
            return before
        subscription["version"] += 1
        await tx.put("subscription", subscription["id"], subscription, customer_id=customer["id"])
        after = subscription_json(self.catalog, subscription, now)
        await self._audit(
            tx,
            customer,
            "subscription",
            "update_subscription",
            after,
            old_value=before,
            data={"SubscriptionId": subscription["id"]} | changes,
        )
        return after

    async def _change_status(
        self, tx: Unit, customer: dict[str, Any], subscription: dict[str, Any], target: str, now: datetime
    ) -> None:
        status = subscription["status"]
        window_open = now <= parse_instant(subscription["cancellationAllowedUntilDate"])
        if target == "deleted":
            if not window_open:
                raise SandboxError(
                    400,
                    codes.CANCELLATION_WINDOW_PASSED,
                    f"You have passed your {CANCELLATION_WINDOW_DAYS}-day cancellation window. "
                    "We are unable to cancel your purchase",
                )
            subscription["status"] = "deleted"
            subscription["refundable"] = []
            subscription["autoRenewEnabled"] = False
            subscription["scheduledNextTermInstructions"] = None
            return
        if (status, target) not in (("active", "suspended"), ("suspended", "active")):
            raise SandboxError(
                400, codes.STATUS_CHANGE_NOT_ALLOWED, f"Asset status cannot be changed to {target} from {status}"
            )
        if self.settings.suspend_only_in_cancellation_window and not window_open:
            raise SandboxError(
                400,
                codes.CANCELLATION_WINDOW_PASSED,
                f"You have passed your {CANCELLATION_WINDOW_DAYS}-day cancellation window.",
            )
        if target == "active" and subscription.get("parentSubscriptionId"):
            parent = await tx.get("subscription", subscription["parentSubscriptionId"].lower())
            if parent is None or parent["status"] != "active":
                raise SandboxError(
                    409,
                    codes.PARENT_NOT_ACTIVE,
                    "Cannot enable a child subscription, when the parent subscription is not Active",
                )
        subscription["status"] = target
        if target == "suspended":
            # Microsoft removes scheduled changes when a new-commerce subscription is suspended.
            subscription["scheduledNextTermInstructions"] = None
            subscription["suspensionReasons"] = ["PartnerInitiated"]
        else:
            subscription["suspensionReasons"] = []

    async def _change_quantity(
        self,
        tx: Unit,
        customer: dict[str, Any],
        subscription: dict[str, Any],
        ref: SkuRef,
        quantity: int,
        now: datetime,
    ) -> None:
        self._check_range(ref, quantity)
        current = subscription["quantity"]
        if quantity > current:
            held = await tx.documents("subscription", customer_id=customer["id"])
            others = [s for s in held if s["id"] != subscription["id"]]
            self._check_pool(ref, others + [dict(subscription, quantity=0)], quantity)
            subscription["refundable"] = refundable_details(subscription, now) + [
                {"quantity": quantity - current, "allowedUntil": iso(now + REFUND_WINDOW)}
            ]
            subscription["quantity"] = quantity
            return
        decrease = current - quantity
        details = refundable_details(subscription, now)
        refundable = sum(detail["quantity"] for detail in details)
        if decrease > refundable:
            raise SandboxError(
                400,
                codes.CANNOT_DECREASE,
                "Subscription quantity cannot be decreased",
                [f"Only {refundable} seat(s) are still inside their refund window; {decrease} were asked."],
            )
        counts = (await self._licence_counts(tx, customer["id"])).get(ref.sku["provisioningId"].lower())
        consumed = counts["consumed"] if counts else 0
        active_after = (counts["active"] if counts else 0) - decrease
        if active_after < consumed:
            raise SandboxError(
                400,
                codes.CANNOT_UPDATE_QUANTITY,
                "Cannot update the seat quantity for this subscription",
                [
                    f"{consumed} licence(s) of {ref.sku['title']} are assigned; "
                    f"unassign them before reducing to {quantity}."
                ],
            )
        remaining = decrease
        for detail in reversed(details):
            taken = min(detail["quantity"], remaining)
            detail["quantity"] -= taken
            remaining -= taken
        subscription["refundable"] = [detail for detail in details if detail["quantity"] > 0]
        subscription["quantity"] = quantity

    def _check_not_locked(self, subscription: dict[str, Any], now: datetime) -> None:
        """No change to seats, scheduled changes or auto-renew in the last 24 hours before the renewal."""
        renewal = term_end_instant(parse_instant(subscription["commitmentEndDate"]))
        if renewal - RENEWAL_LOCK <= now < renewal:
            raise SandboxError(
                400,
                codes.RENEWAL_LOCKED,
                "The subscription is locked for changes in the 24 hours before its renewal",
                [f"Changes are possible again after the renewal at {iso(renewal)}."],
            )

    def _instructions(self, ref: SkuRef, raw: Any) -> dict[str, Any] | None:
        """Validated scheduledNextTermInstructions (null clears them)."""
        if raw is None:
            return None
        instructions = _dict(raw)
        product = _dict(instructions.get("product"))
        product_id = _text(product.get("productId")) or ref.product["id"]
        sku_id = _text(product.get("skuId")) or ref.sku["id"]
        target = self.catalog.find_sku(product_id, sku_id)
        if target is None or target.product["id"] != ref.product["id"]:
            raise invalid_property(
                "ScheduledNextTermInstructions", f"{product_id}:{sku_id} is not a SKU of this product."
            )
        term = _text(product.get("termDuration")).upper()
        cycle = _text(product.get("billingCycle")).lower()
        if not term or not cycle or not target.supports(term, cycle):
            raise invalid_property(
                "ScheduledNextTermInstructions",
                f"{target.key} is not sold with term {term or '?'} billed {cycle or '?'}.",
            )
        result: dict[str, Any] = {
            "product": {
                "productId": target.product["id"],
                "skuId": target.sku["id"],
                "availabilityId": _text(product.get("availabilityId")),
                "billingCycle": product.get("billingCycle"),
                "termDuration": term,
            }
        }
        if product.get("promotionId"):
            result["product"]["promotionId"] = product["promotionId"]
        if instructions.get("quantity") is not None:
            quantity = _int(instructions["quantity"], "scheduledNextTermInstructions.quantity")
            self._check_range(target, quantity)
            result["quantity"] = quantity
        if instructions.get("customTermEndDate"):
            result["customTermEndDate"] = instructions["customTermEndDate"]
        return result

    # term ends -------------------------------------------------------------------------------

    def _note_term_end(self, subscription: dict[str, Any]) -> None:
        end = term_end_instant(parse_instant(subscription["commitmentEndDate"]))
        if self._next_term_end is None or end < self._next_term_end:
            self._next_term_end = end

    async def _refresh_next_term_end(self, tx: Unit) -> None:
        ends = [
            term_end_instant(parse_instant(s["commitmentEndDate"]))
            for s in await tx.documents("subscription")
            if s["status"] in LIVE
        ]
        self._next_term_end = min(ends) if ends else None

    async def roll_terms(self) -> TermSummary:
        """Process every term that has ended by now (the admin clock calls this after a move)."""
        async with self._lock:
            now = self.clock.now()
            async with self.store.unit(now) as tx:
                return await self._roll_terms(tx, now)

    async def _roll_terms(self, tx: Unit, now: datetime) -> TermSummary:
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
                await self._audit(
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
        await self._refresh_next_term_end(tx)
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

    # users -----------------------------------------------------------------------------------

    async def _new_user(
        self,
        tx: Unit,
        customer: dict[str, Any],
        *,
        upn: str,
        first: str,
        last: str,
        display: str,
        usage_location: str | None,
    ) -> dict[str, Any]:
        user = {
            "id": str(uuid.uuid4()),
            "customerId": customer["id"],
            "userPrincipalName": upn,
            "firstName": first,
            "lastName": last,
            "displayName": display or f"{first} {last}".strip() or upn,
            "usageLocation": usage_location or None,
            "state": "active",
            "licenses": [],
            "createdAt": iso(self.clock.now()),
            # A new user signs in once to set a password: the simulation starts their sign-ins there.
            "lastSignInDateTime": iso(self.clock.now()),
            "softDeletionTime": None,
        }
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        return user

    async def _user(self, tx: Unit, customer: dict[str, Any], user_id: str) -> dict[str, Any]:
        user = await tx.get("user", user_id.lower())
        if user is None or user["customerId"] != customer["id"] or user["state"] != "active":
            raise not_found(codes.USER_NOT_FOUND, f"User object Id {user_id} is not found")
        return user

    async def users(self, tx: Unit, customer_id: str, size: int | None, token: str | None) -> dict[str, Any]:
        """Active users in creation order, paged by keyset: the continuation token names the last
        user's position, so a page reads only its own rows, and a user created or deleted between
        two pages neither shifts nor repeats the others (as Microsoft's opaque tokens behave)."""
        customer = await self.customer(tx, customer_id)
        wanted = size or self.settings.users_page_size
        limit = self.settings.max_page_size if wanted <= 0 else min(wanted, self.settings.max_page_size)
        scope = f"users-after:{customer['id']}"
        after = decode_token(token, scope) if token else 0
        rows = await tx.page(
            "user", customer_id=customer["id"], after=after, limit=limit + 1, where={"state": "active"}
        )
        more = len(rows) > limit
        rows = rows[:limit]
        self_uri = f"/customers/{customer['id']}/users"
        return collection(
            [user_json(user) for _, user in rows],
            self_uri,
            next_uri=f"{self_uri}?size={limit}&seekOperation=Next" if more else None,
            token=encode_token({"s": scope, "o": rows[-1][0]}) if more else None,
        )

    async def user(self, tx: Unit, customer_id: str, user_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        return user_json(await self._user(tx, customer, user_id))

    def _check_upn(self, customer: dict[str, Any], upn: str) -> None:
        local, _, domain = upn.partition("@")
        if not local or domain.lower() != customer["domain"]:
            raise invalid_property("UserPrincipalName", f"The user principal name must be <name>@{customer['domain']}.")

    async def _upn_free(self, tx: Unit, customer: dict[str, Any], upn: str, *, except_id: str | None = None) -> None:
        for other in await tx.find("user", customer_id=customer["id"], where={"userPrincipalName": upn}):
            if other["state"] == "active" and other["id"] != except_id:
                raise invalid_property("UserPrincipalName", f"{upn} already exists.", status=409)

    async def create_user(
        self, tx: Unit, customer_id: str, raw: Any, *, actor: Actor | None = None, require_location: bool = True
    ) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a CustomerUser")
        upn = _text(body.get("userPrincipalName")).lower()
        self._check_upn(customer, upn)
        await self._upn_free(tx, customer, upn)
        location = _text(body.get("usageLocation")).upper()
        if require_location and not location:
            raise invalid_property("UsageLocation", "UsageLocation is a required field.")
        if location and not re.fullmatch(r"[A-Z]{2}", location):
            raise invalid_property("UsageLocation", "UsageLocation is a two-letter country code.")
        if not _text(body.get("displayName")):
            raise invalid_property("DisplayName", "DisplayName is a required field.")
        profile = _dict(body.get("passwordProfile"))
        password = _text(profile.get("password"))
        if actor is None and not _strong(password):
            raise invalid_property(
                "PasswordProfile", "The password needs 8+ characters from three of: upper, lower, digit, symbol."
            )
        user = await self._new_user(
            tx,
            customer,
            upn=upn,
            first=_text(body.get("firstName")),
            last=_text(body.get("lastName")),
            display=_text(body.get("displayName")),
            usage_location=location or None,
        )
        await self._audit(
            tx,
            customer,
            "customer_user",
            "create_customer_user",
            user_json(user),
            data={"CustomerUserId": user["id"], "UserPrincipalName": upn},
            actor=actor,
        )
        force = profile.get("forceChangePassword")
        return user_json(
            user,
            password={"forceChangePassword": force if isinstance(force, bool) else True, "password": password}
            if actor is None
            else None,
        )

    async def update_user(
        self, tx: Unit, customer_id: str, user_id: str, raw: Any, *, actor: Actor | None = None
    ) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        user = await self._user(tx, customer, user_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a CustomerUser")
        before = user_json(user)
        operation = "update_customer_user"
        for key in ("firstName", "lastName", "displayName"):
            if isinstance(body.get(key), str) and body[key].strip():
                user[key] = body[key].strip()
        if "usageLocation" in body:
            location = _text(body.get("usageLocation")).upper()
            if location and not re.fullmatch(r"[A-Z]{2}", location):
                raise invalid_property("UsageLocation", "UsageLocation is a two-letter country code.")
            user["usageLocation"] = location or None
        upn = _text(body.get("userPrincipalName")).lower()
        if upn and upn != user["userPrincipalName"]:
            self._check_upn(customer, upn)
            await self._upn_free(tx, customer, upn, except_id=user["id"])
            user["userPrincipalName"] = upn
            operation = "update_customer_user_principal_name"
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        after = user_json(user)
        await self._audit(
            tx,
            customer,
            "customer_user",
            operation,
            after,
            old_value=before,
            data={"CustomerUserId": user["id"]},
            actor=actor,
        )
        return after

    async def sign_in(self, tx: Unit, customer_id: str, user_id: str, raw: Any) -> dict[str, Any]:
        """The user signed in (at `at`, default now): what Microsoft Graph reports as
        `signInActivity.lastSignInDateTime`. Not a Partner Center operation, so not audited."""
        customer = await self.customer(tx, customer_id)
        user = await self._user(tx, customer, user_id)
        body = normalise(raw)
        at_text = _text(_dict(body).get("at"))
        try:
            at = parse_instant(at_text) if at_text else self.clock.now()
        except ValueError:
            raise invalid_input("at must be an ISO-8601 date-time") from None
        user["lastSignInDateTime"] = iso(at)
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        return user_json(user)

    async def delete_user(self, tx: Unit, customer_id: str, user_id: str, *, actor: Actor | None = None) -> None:
        """Soft delete, as Microsoft does: the user leaves the listing and frees its licences."""
        customer = await self.customer(tx, customer_id)
        user = await self._user(tx, customer, user_id)
        before = user_json(user)
        user["state"] = "inactive"
        user["softDeletionTime"] = iso(self.clock.now())
        user["licenses"] = []
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        await self._audit(
            tx,
            customer,
            "customer_user",
            "delete_customer_user",
            user_json(user),
            old_value=before,
            data={"CustomerUserId": user["id"]},
            actor=actor,
        )

    # licences --------------------------------------------------------------------------------

    async def _licence_counts(self, tx: Unit, customer_id: str) -> dict[str, dict[str, int]]:
        """Per licence SKU GUID: active/suspended units from subscriptions, consumed from users."""
        counts: dict[str, dict[str, int]] = {}
        for subscription in await tx.documents("subscription", customer_id=customer_id):
            if subscription["status"] in LIVE:
                entry = counts.setdefault(
                    subscription["provisioningId"].lower(), {"active": 0, "suspended": 0, "consumed": 0}
                )
                entry[subscription["status"]] += subscription["quantity"]
        held = await tx.field_values(
            "user", customer_id=customer_id, field="licenses", where={"state": "active"}, skip_empty=True
        )
        for licences in held:
            for licence in licences or []:
                entry = counts.setdefault(licence.lower(), {"active": 0, "suspended": 0, "consumed": 0})
                entry["consumed"] += 1
        return counts

    async def subscribed_skus(self, tx: Unit, customer_id: str, groups: str | None) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        wanted = {group.strip().lower() for group in (groups or "group1").split(",") if group.strip()}
        counts = await self._licence_counts(tx, customer["id"])
        items = (
            [subscribed_sku_json(self.catalog, sku, value) for sku, value in counts.items()]
            if "group1" in wanted
            else []
        )
        return collection(items, f"/customers/{customer['id']}/subscribedskus")

    async def user_licences(self, tx: Unit, customer_id: str, user_id: str) -> dict[str, Any]:
        customer = await self.customer(tx, customer_id)
        user = await self._user(tx, customer, user_id)
        return collection(
            [license_json(self.catalog, sku) for sku in user["licenses"]],
            f"/customers/{customer['id']}/users/{user['id']}/licenses",
        )

    async def update_licences(
        self, tx: Unit, customer_id: str, user_id: str, raw: Any, *, actor: Actor | None = None
    ) -> dict[str, Any]:
        """LicenseUpdate: assign and remove licence SKUs. A user needs a usage location, and a SKU
        with no free unit fails with 60012, as Microsoft answers."""
        customer = await self.customer(tx, customer_id)
        user = await self._user(tx, customer, user_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a LicenseUpdate")
        to_assign = [
            _text(_dict(item).get("skuId")).lower() for item in (body.get("licensesToAssign") or []) if _dict(item)
        ]
        to_remove = [
            (_text(item) or _text(_dict(item).get("skuId"))).lower() for item in (body.get("licensesToRemove") or [])
        ]
        if not to_assign and not to_remove:
            raise invalid_input("licensesToAssign or licensesToRemove is required")
        if to_assign and not user.get("usageLocation"):
            raise invalid_property(
                "UsageLocation", "License assignment failed because the user's usage location is not set."
            )
        counts = await self._licence_counts(tx, customer["id"])
        before = list(user["licenses"])
        licences = [sku for sku in user["licenses"] if sku not in to_remove]
        for sku in to_assign:
            if sku in licences:
                continue
            ref = self.catalog.by_licence(sku)
            if ref is None:
                raise invalid_property("SkuId", f"{sku} is not a licence SKU of this customer.")
            if ref.sku["targetType"] != "User":
                raise invalid_property(
                    "SkuId", f"{ref.sku['title']} is a tenant licence and cannot be assigned to a user."
                )
            entry = counts.get(sku, {"active": 0, "consumed": 0})
            if entry["active"] - entry["consumed"] < 1:
                raise SandboxError(
                    400,
                    codes.LICENSES_EXHAUSTED,
                    "We're sorry, it looks like you've run out of licenses. Buy more licenses, and then try again.",
                    [
                        f"LicenseQuotaExceededException : Subscription with Account {customer['id']} and SKU {sku} "
                        "does not have any available licenses left."
                    ],
                )
            entry["consumed"] += 1
            licences.append(sku)
        user["licenses"] = licences
        await tx.put("user", user["id"], user, customer_id=customer["id"])
        added = [sku for sku in licences if sku not in before]
        removed = [sku for sku in before if sku not in licences]
        result: dict[str, Any] = {
            "licensesToAssign": [{"skuId": sku} for sku in to_assign],
            "licenseWarnings": [],
            "attributes": {"objectType": "LicenseUpdate"},
        }
        if to_remove:
            result["licensesToRemove"] = to_remove
        await self._audit(
            tx,
            customer,
            "license",
            "update_customer_user_licenses",
            result,
            data={"CustomerUserId": user["id"]}
            | {f"AddedLicenseSkuId-{i}": sku for i, sku in enumerate(added)}
            | {f"RemovedLicenseSkuId-{i}": sku for i, sku in enumerate(removed)},
            actor=actor,
        )
        return result

    # audit -----------------------------------------------------------------------------------

    async def audit_records(
        self,
        tx: Unit,
        *,
        start: str | None,
        end: str | None,
        filter_text: str | None,
        size: int | None,
        token: str | None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        try:
            begin = parse_instant(start) if start else now - timedelta(days=30)
            finish = parse_instant(end) if end else now + timedelta(seconds=1)
        except ValueError:
            raise invalid_input("startDate and endDate are dates (yyyy-mm-dd) or UTC date-times") from None
        if end and len(end.strip()) <= 10:
            finish += timedelta(days=1)  # a date-only end date includes that whole day
        if begin < now - timedelta(days=90):
            raise invalid_input("startDate must be within the last 90 days")
        records = await tx.audit_between(begin, finish)
        if filter_text:
            try:
                spec = normalise(json.loads(filter_text))
            except ValueError:
                raise invalid_input("filter must be URL-encoded JSON") from None
            field_name, value = _text(_dict(spec).get("field")).lower(), _text(_dict(spec).get("value")).lower()
            if field_name == "customerid":
                records = [r for r in records if (r.get("customerId") or "").lower() == value]
            elif field_name == "resourcetype":
                records = [r for r in records if r["resourceType"].replace("_", "").lower() == value.replace("_", "")]
            elif field_name == "companyname":
                records = [r for r in records if value in (r.get("customerName") or "").lower()]
            else:
                raise invalid_input("filter Field must be CustomerId, ResourceType or CompanyName")
        query = "&".join(
            part
            for part in (
                f"startDate={quote(start, safe='')}" if start else "",
                f"endDate={quote(end, safe='')}" if end else "",
                f"filter={quote(filter_text, safe='')}" if filter_text else "",
            )
            if part
        )
        return self._page(records, "/auditrecords" + (f"?{query}" if query else ""), "audit", size, token)
