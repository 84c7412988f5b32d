"""What every resource of the sandbox shares: settings, the audit writer, paging and the input helpers.

Each resource (customers, agreements, orders, subscriptions, term ends, users, licences, audit
records) is a class in its own module that holds a `Core`; `SandboxBackend` composes them.
"""

from __future__ import annotations

import base64
import json
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sandbox import errors as codes
from sandbox.catalog import Catalog
from sandbox.clock import SandboxClock, iso
from sandbox.errors import invalid_input, not_found
from sandbox.resources import collection
from sandbox.store import Store, Unit

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


def normalise(value: Any) -> Any:
    """Microsoft accepts PascalCase or camelCase input: first letters of keys are lowered."""
    if isinstance(value, dict):
        return {
            (key[:1].lower() + key[1:] if isinstance(key, str) else key): normalise(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [normalise(item) for item in value]
    return value


def as_text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_filter(filter_text: str) -> tuple[str, str, str]:
    """A list's `filter` query (URL-encoded JSON {Field, Value, Operator}): its field, value and operator,
    lower-cased."""
    try:
        spec = as_dict(normalise(json.loads(filter_text)))
    except ValueError:
        raise invalid_input("filter must be URL-encoded JSON") from None
    return as_text(spec.get("field")).lower(), as_text(spec.get("value")).lower(), as_text(spec.get("operator")).lower()


def as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise invalid_input(f"{name} must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise invalid_input(f"{name} must be a whole number") from None
    if isinstance(value, float) and value != number:
        raise invalid_input(f"{name} must be a whole number")
    return number


def new_password() -> str:
    """A strong random password: 16 characters from every class, like the ones Microsoft generates."""
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, "!@#$%^&*-_=+?")
    chars = [secrets.choice(group) for group in classes]
    chars += [secrets.choice("".join(classes)) for _ in range(12)]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def is_strong(password: str) -> bool:
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


class Core:
    """The store, catalog, clock and settings every resource works with, and what they all do:
    look a customer up, write an audit record, page a listing."""

    def __init__(self, store: Store, catalog: Catalog, clock: SandboxClock, settings: SandboxSettings) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.settings = settings
        self.partner_actor = Actor(settings.partner_user, settings.application_id)

    async def audit(
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

    async def customer(self, tx: Unit, customer_id: str) -> dict[str, Any]:
        customer = await tx.get("customer", customer_id.lower())
        if customer is None:
            raise not_found(codes.TENANT_NOT_FOUND, f"Tenant {customer_id} was not found.")
        return customer

    def page(
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


class Resource:
    """A resource's rules; handlers call its methods inside `SandboxBackend.transaction()`, and they
    return wire JSON or raise `SandboxError`."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.clock = core.clock
        self.catalog = core.catalog
        self.settings = core.settings
