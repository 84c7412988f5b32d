"""The one HTTP client to Microsoft Partner Center (or the built-in sandbox, which speaks the same wire).

Protocol rules it enforces so callers need not think about them:

- `MS-RequestId` is Microsoft's idempotency key for one logical call. It is kept when a request
  may not have reached Microsoft or was refused unprocessed (timeout, dropped connection, 429) and
  renewed after any other answer, exactly as Microsoft's guidance says.
- `MS-CorrelationId` is new for every HTTP request and logged with our own correlation id, so a
  support ticket can name the exact request. Authorization headers and bodies are never logged.
- 429 waits `Retry-After`; 5xx, timeouts and dropped connections back off exponentially with
  jitter; all within `max_attempts` and `max_total_wait`, after which a domain error is raised.
  While a call waits out a 429, every other call of this client to the same customer (else the
  partner) waits with it before sending, so concurrent callers do not keep knocking while throttled.
- Creates are never repeated blindly: before retrying a customer creation or a checkout whose
  outcome is unknown (5xx or lost answer), the client looks for the result (the customer by its
  domain; the cart's status and the subscriptions it produced), so a retried checkout cannot buy twice.
- `202 Accepted` + `Location` is polled to completion; collections are followed page by page.
- Error bodies `{code, description, data, source}` become the domain errors of `errors.py`.
- Refused credentials (a 401/403, or Microsoft's sign-in refusing our app or refresh token) are also
  handed to `on_auth_failure`, so the app can alert the operator; the caller still gets the error.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import logging
import zipfile
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import quote

from pydantic import ValidationError

from services.i18n import _
from services.partner_center.errors import (
    ETAG_MESSAGE,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInvalidInput,
    PartnerCenterNotFound,
)
from services.partner_center.models import (
    Address,
    AddressValidationResult,
    Agreement,
    AgreementMetaData,
    AuditRecord,
    Availability,
    Cart,
    CartCheckoutResult,
    CartLineItem,
    CartStatus,
    Collection,
    Contact,
    CountryValidationRules,
    Customer,
    CustomerUser,
    License,
    LicenseUpdate,
    Link,
    Order,
    PriceSheetRow,
    Product,
    RelationshipRequest,
    Sku,
    SubscribedSku,
    Subscription,
)
from services.partner_center.transport import (
    Accepted,
    LazyPage,
    PartnerCenterTransport,
    Response,
    parse_model,
    retry_after_of,
    status_of,
)

logger = logging.getLogger(__name__)

MICROSOFT_CUSTOMER_AGREEMENT = "MicrosoftCustomerAgreement"
DEFAULT_PRICE_SHEET_VIEW = "updatedlicensebased"
# Clock difference allowed between our cart timestamps and Microsoft's subscription timestamps.
_CLOCK_SKEW = timedelta(minutes=10)


def _contains(expected: Any, actual: Any) -> bool:
    """True if every value in `expected` is also in `actual` (strings compared case-insensitively)."""
    if isinstance(expected, Mapping):
        if not isinstance(actual, Mapping):
            return False
        lowered = {str(key).lower(): value for key, value in actual.items()}
        return all(_contains(value, lowered.get(str(key).lower())) for key, value in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(map(_contains, expected, actual))
    if isinstance(expected, str) and isinstance(actual, str):
        return expected.lower() == actual.lower()
    return bool(expected == actual)


_CHANGEABLE = (
    "quantity",
    "status",
    "autoRenewEnabled",
    "friendlyName",
    "billingCycle",
    "scheduledNextTermInstructions",
)


def _changes_applied(desired: Subscription, current: Subscription) -> bool:
    """Whether `current` already shows what a PATCH of `desired` asked for."""
    wanted = desired.to_wire()
    have = current.to_wire()
    return all(_contains(wanted.get(key), have.get(key)) for key in _CHANGEABLE if key in wanted)


def _parse_price_sheet(body: bytes) -> tuple[list[PriceSheetRow], int]:
    """Rows of Microsoft's price-sheet CSV (optionally zipped); also how many rows were unreadable."""
    if body[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = [name for name in archive.namelist() if not name.endswith("/")]
            body = archive.read(names[0]) if names else b""
    reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
    rows: list[PriceSheetRow] = []
    skipped = 0
    for record in reader:
        try:
            rows.append(PriceSheetRow.model_validate({key: value for key, value in record.items() if key}))
        except ValidationError:
            skipped += 1
    return rows, skipped


class PartnerCenterClient(PartnerCenterTransport):
    """Typed async operations on Partner Center over one `PartnerCenterTransport` (one instance per app,
    sharing one aiohttp session)."""

    # --- Customers ------------------------------------------------------------------------------

    async def domain_is_taken(self, domain: str) -> bool:
        """Whether `<name>.onmicrosoft.com` already belongs to some tenant (HEAD: 200 taken, 404 free)."""
        status = await self._call("HEAD", self._url("domains", domain), status_of, ok=(200, 404))
        return status == 200

    async def country_rules(self, country: str) -> CountryValidationRules:
        """Address and registration rules of a country (ISO 3166 alpha-2)."""
        return await self._call(
            "GET", self._url("countryvalidationrules", country), parse_model(CountryValidationRules)
        )

    async def validate_address(self, address: Address) -> AddressValidationResult:
        """Microsoft's verdict on an address, with suggested corrections."""
        return await self._call(
            "POST", self._url("validations", "address"), parse_model(AddressValidationResult), body=address.to_wire()
        )

    async def create_customer(self, customer: Customer, *, request_id: str | None = None) -> Customer:
        """Create a customer tenant. The answer carries the first admin's credentials (`user_credentials`).

        Pass the durable job's key as `request_id` so a restarted job is recognised by Microsoft.
        If the answer was lost but the tenant exists, the tenant is returned as found by its domain -
        then `user_credentials` is None (Microsoft shows the password only once).
        """
        domain = customer.domain
        if not domain:
            raise PartnerCenterInvalidInput(_("The new customer needs a domain."), field="domain")

        async def recover() -> Customer | None:
            found = await self.find_customer_by_domain(domain)
            if found is not None:
                logger.warning("Customer creation had already gone through at Microsoft (tenant %s)", found.id)
            return found

        return await self._call(
            "POST",
            self._url("customers"),
            parse_model(Customer),
            body=customer.to_wire(),
            request_id=request_id,
            recover=recover,
        )

    async def get_customer(self, customer_id: str) -> Customer:
        return await self._call("GET", self._url("customers", customer_id), parse_model(Customer))

    async def find_customer_by_domain(self, domain: str) -> Customer | None:
        """The reseller's customer whose primary domain is exactly `domain`, if any."""
        query = json.dumps({"Field": "Domain", "Value": domain, "Operator": "starts_with"}, separators=(",", ":"))
        wanted = domain.lower()
        pages = self._pages(self._url("customers"), Customer, params={"size": "100", "filter": query})
        async with aclosing(pages):
            async for page in pages:
                for candidate in page.items:
                    if (candidate.domain or "").lower() == wanted:
                        return candidate
        return None

    async def relationship_request_url(self) -> str:
        """The link a customer's admin opens to accept the reseller relationship."""
        request = await self._call(
            "GET", self._url("customers", "relationshiprequests"), parse_model(RelationshipRequest)
        )
        return request.url

    async def mca_template_id(self) -> str:
        """The current Microsoft Customer Agreement template (the lowest version rank is in force)."""
        metadata = await self._all(
            self._url("agreements"),
            AgreementMetaData,
            params={"agreementType": MICROSOFT_CUSTOMER_AGREEMENT},
            kind="app_user",
        )
        candidates = [
            (item.version_rank if item.version_rank is not None else 1 << 30, item.template_id)
            for item in metadata
            if item.template_id
            and (item.agreement_type is None or item.agreement_type.lower() == MICROSOFT_CUSTOMER_AGREEMENT.lower())
        ]
        if not candidates:
            raise PartnerCenterNotFound(_("Microsoft did not list the Microsoft Customer Agreement."))
        return min(candidates)[1]

    async def accept_agreement(
        self,
        customer_id: str,
        contact: Contact,
        *,
        template_id: str | None = None,
        date_agreed: datetime | None = None,
    ) -> Agreement:
        """Record the partner's attestation that the customer accepted the MCA (needed before buying)."""
        agreement = Agreement(
            primary_contact=contact,
            date_agreed=date_agreed or datetime.now(UTC),
            template_id=template_id or await self.mca_template_id(),
            type=MICROSOFT_CUSTOMER_AGREEMENT,
        )
        return await self._call(
            "POST",
            self._url("customers", customer_id, "agreements"),
            parse_model(Agreement),
            body=agreement.to_wire(),
            kind="app_user",
        )

    async def agreements(self, customer_id: str, *, agreement_type: str | None = None) -> list[Agreement]:
        """Attestations already recorded for a customer."""
        params = {"agreementType": agreement_type} if agreement_type else None
        return await self._all(
            self._url("customers", customer_id, "agreements"), Agreement, params=params, kind="app_user"
        )

    # --- Catalog --------------------------------------------------------------------------------

    async def products(
        self, country: str, *, target_view: str = "OnlineServices", target_segment: str = "commercial"
    ) -> list[Product]:
        params = {"country": country, "targetView": target_view, "targetSegment": target_segment}
        return await self._all(self._url("products"), Product, params=params)

    async def product(self, product_id: str, country: str) -> Product:
        return await self._call(
            "GET", self._url("products", product_id), parse_model(Product), params={"country": country}
        )

    async def skus(self, product_id: str, country: str, *, target_segment: str = "commercial") -> list[Sku]:
        params = {"country": country, "targetSegment": target_segment}
        return await self._all(self._url("products", product_id, "skus"), Sku, params=params)

    async def availabilities(
        self, product_id: str, sku_id: str, country: str, *, target_segment: str = "commercial"
    ) -> list[Availability]:
        """What can be bought now. Availability ids rotate: fetch them right before building a cart."""
        params = {"country": country, "targetSegment": target_segment}
        return await self._all(
            self._url("products", product_id, "skus", sku_id, "availabilities"), Availability, params=params
        )

    async def price_sheet(
        self,
        market: str,
        *,
        view: str = DEFAULT_PRICE_SHEET_VIEW,
        timeline: str | None = None,
        month: str | None = None,
    ) -> list[PriceSheetRow]:
        """Microsoft's price sheet for a market (the reseller's cost), from the partner API host."""
        url = (
            f"{self._price_sheet_url}/v1.0/sales/pricesheets"
            f"(Market='{quote(market, safe='')}',PricesheetView='{quote(view, safe='')}')/$value"
        )
        params = {key: value for key, value in (("timeline", timeline), ("month", month)) if value}
        body = await self._call(
            "GET",
            url,
            lambda response: response.body,
            kind="app_user",
            audience="partner_api",
            params=params or None,
            accept="text/csv, application/octet-stream, application/json",
            client_timeout=self._price_sheet_timeout,
        )
        rows, skipped = await asyncio.to_thread(_parse_price_sheet, body)
        if skipped:
            logger.warning("Price sheet for %s: rows that could not be read were skipped: %d", market, skipped)
        return rows

    # --- Carts and orders -----------------------------------------------------------------------

    async def create_cart(self, customer_id: str, line_items: Sequence[CartLineItem]) -> Cart:
        """A cart (it expires after a while). Add-ons carry `provisioningContext.parentSubscriptionId`."""
        numbered = [item.model_copy(update={"id": index}) for index, item in enumerate(line_items)]
        return await self._call(
            "POST",
            self._url("customers", customer_id, "carts"),
            parse_model(Cart),
            body=Cart(line_items=numbered).to_wire(),
        )

    async def get_cart(self, customer_id: str, cart_id: str) -> Cart:
        return await self._call("GET", self._url("customers", customer_id, "carts", cart_id), parse_model(Cart))

    async def checkout(self, customer_id: str, cart_id: str, *, request_id: str | None = None) -> CartCheckoutResult:
        """Buy a cart. Never buys twice: an uncertain attempt, or Microsoft saying the cart was
        already submitted, leads to the orders the earlier attempt created."""

        async def recover() -> CartCheckoutResult | None:
            return await self._checked_out(customer_id, cart_id)

        try:
            return await self._call(
                "POST",
                self._url("customers", customer_id, "carts", cart_id, "checkout"),
                parse_model(CartCheckoutResult),
                request_id=request_id,
                recover=recover,
            )
        except PartnerCenterConflict as conflict:
            if conflict.code != "800065":
                raise
            result = await self._checked_out(customer_id, cart_id)
            if result is None:
                raise
            return result

    async def _checked_out(self, customer_id: str, cart_id: str) -> CartCheckoutResult | None:
        """None if the cart is still open (safe to check out); the orders it produced if it was bought."""
        cart = await self.get_cart(customer_id, cart_id)
        if cart.status == CartStatus.ACTIVE:
            return None
        if cart.status != CartStatus.ORDERED:
            raise PartnerCenterError(
                _("This order can no longer be placed (the cart expired). Please start the order again."),
                code="cart_not_active",
            )
        orders = await self._orders_of(customer_id, cart)
        logger.warning("Checkout of cart %s had already gone through at Microsoft (orders: %d)", cart_id, len(orders))
        return CartCheckoutResult(orders=orders)

    async def _orders_of(self, customer_id: str, cart: Cart) -> list[Order]:
        """The orders a checked-out cart produced, found through the subscriptions it created.

        Microsoft's cart does not name its orders, so this matches subscriptions of the cart's
        products created since the cart was, and reads their orders. Subscriptions can appear a
        little after checkout, so this looks a few times before giving up (without buying again).
        """
        wanted: set[str] = set()
        for line in cart.line_items:
            for item in [line, *(line.addon_items or [])]:
                wanted.add(":".join(item.catalog_item_id.split(":")[:2]).upper())
        since = cart.creation_timestamp or cart.last_modified_timestamp
        for look in range(5):
            if look:
                await self._sleep(self._poll_interval)
            order_ids: list[str] = []
            for subscription in await self.subscriptions(customer_id):
                created = subscription.creation_date
                if (
                    subscription.order_id
                    and subscription.sku_key in wanted
                    and (since is None or created is None or created >= since - _CLOCK_SKEW)
                    and subscription.order_id not in order_ids
                ):
                    order_ids.append(subscription.order_id)
            if order_ids:
                return [await self.get_order(customer_id, order_id) for order_id in order_ids]
        raise PartnerCenterError(
            "The order was placed, but Microsoft has not listed its subscriptions yet. "
            "Check the subscriptions in a few minutes before ordering again.",
            code="checkout_unconfirmed",
        )

    async def get_order(self, customer_id: str, order_id: str) -> Order:
        return await self._call("GET", self._url("customers", customer_id, "orders", order_id), parse_model(Order))

    # --- Subscriptions ------------------------------------------------------------------------------

    async def subscriptions(self, customer_id: str) -> list[Subscription]:
        return await self._all(self._url("customers", customer_id, "subscriptions"), Subscription)

    async def subscription(self, customer_id: str, subscription_id: str) -> Subscription:
        return await self._call(
            "GET", self._url("customers", customer_id, "subscriptions", subscription_id), parse_model(Subscription)
        )

    async def update_subscription(
        self, customer_id: str, subscription: Subscription, *, withdraw_scheduled_changes: bool = False
    ) -> Subscription:
        """PATCH the whole subscription (quantity, status, autoRenewEnabled, scheduledNextTermInstructions).

        Sends `If-Match` with its e-tag, so a change made elsewhere meanwhile is refused rather than
        overwritten. Typical use: `update_subscription(c, sub.model_copy(update={"quantity": 12}))`.
        `withdraw_scheduled_changes` sends `scheduledNextTermInstructions: null` (requests carry no nulls
        otherwise): the changes scheduled for the renewal are withdrawn.
        """
        url = self._url("customers", customer_id, "subscriptions", subscription.id)
        etag = subscription.etag
        headers = {"If-Match": etag} if etag else None
        body = subscription.to_wire()
        if withdraw_scheduled_changes:
            body["scheduledNextTermInstructions"] = None

        async def recover() -> Subscription | None:
            current = await self.subscription(customer_id, subscription.id)
            withdrawn = not withdraw_scheduled_changes or current.scheduled_next_term_instructions is None
            if withdrawn and _changes_applied(subscription, current):
                return current
            if etag is None or current.etag == etag:
                return None
            raise PartnerCenterConflict(_(ETAG_MESSAGE), code="etag_mismatch")

        def parse(response: Response) -> Subscription | Accepted:
            if response.status == 202:
                return Accepted(response.headers.get("Location"), retry_after_of(response.headers, None))
            return Subscription.model_validate(response.json())

        result = await self._call("PATCH", url, parse, body=body, headers=headers, ok=(200, 202), recover=recover)
        if not isinstance(result, Accepted):
            return result

        def finished(response: Response) -> Subscription | None:
            document = response.json()
            return Subscription.model_validate(document) if isinstance(document, dict) and "id" in document else None

        polled = await self._poll(result, finished)
        return polled if polled is not None else await self.subscription(customer_id, subscription.id)

    async def subscription_addons(self, customer_id: str, subscription_id: str) -> list[Subscription]:
        return await self._all(
            self._url("customers", customer_id, "subscriptions", subscription_id, "addons"), Subscription
        )

    # --- Users and licences (app+user only, as Microsoft requires) ----------------------------------

    async def users_page(
        self, customer_id: str, *, page_size: int = 100, next_link: Link | None = None
    ) -> LazyPage[CustomerUser]:
        """One page of users; pass the previous page's `next_link` for the following one. The users
        are checked when first read (`items`), so the next page can be asked for first."""

        def parse(response: Response) -> LazyPage[CustomerUser]:
            return LazyPage(Collection[Any].model_validate(response.json()), CustomerUser, response.url)

        if next_link is None:
            return await self._call(
                "GET",
                self._url("customers", customer_id, "users"),
                parse,
                params={"size": str(page_size)},
                kind="app_user",
            )
        headers = {item.key: item.value for item in next_link.headers if item.value is not None}
        return await self._call("GET", self._resolve(next_link.uri), parse, headers=headers, kind="app_user")

    async def users(self, customer_id: str, *, page_size: int = 100) -> AsyncGenerator[CustomerUser, None]:
        """Every user of the customer's tenant, page after page."""
        pages = self._pages(
            self._url("customers", customer_id, "users"), CustomerUser, params={"size": str(page_size)}, kind="app_user"
        )
        async with aclosing(pages):
            async for page in pages:
                for user in page.items:
                    yield user

    async def get_user(self, customer_id: str, user_id: str) -> CustomerUser:
        return await self._call(
            "GET", self._url("customers", customer_id, "users", user_id), parse_model(CustomerUser), kind="app_user"
        )

    async def create_user(self, customer_id: str, user: CustomerUser) -> CustomerUser:
        """Create a user (usageLocation is required for licences). If the answer is lost but the user
        exists, the existing user is returned (without a password; the caller chose it)."""
        principal = (user.user_principal_name or "").lower()

        async def recover() -> CustomerUser | None:
            users = self.users(customer_id)
            async with aclosing(users):
                async for existing in users:
                    if principal and (existing.user_principal_name or "").lower() == principal:
                        logger.warning("User creation had already gone through at Microsoft (user %s)", existing.id)
                        return existing
            return None

        return await self._call(
            "POST",
            self._url("customers", customer_id, "users"),
            parse_model(CustomerUser),
            body=user.to_wire(),
            kind="app_user",
            recover=recover,
        )

    async def update_user(self, customer_id: str, user_id: str, changes: CustomerUser) -> CustomerUser:
        """PATCH a user with the fields set in `changes` (e.g. a new password profile or display name)."""
        return await self._call(
            "PATCH",
            self._url("customers", customer_id, "users", user_id),
            parse_model(CustomerUser),
            body=changes.to_wire(),
            kind="app_user",
        )

    async def delete_user(self, customer_id: str, user_id: str) -> None:
        """Delete a user (Microsoft keeps it restorable for 30 days)."""

        async def recover() -> bool | None:
            try:
                await self.get_user(customer_id, user_id)
            except PartnerCenterNotFound:
                return True  # the lost attempt did delete it
            return None

        await self._call(
            "DELETE",
            self._url("customers", customer_id, "users", user_id),
            lambda _response: True,
            kind="app_user",
            recover=recover,
        )

    async def subscribed_skus(self, customer_id: str) -> list[SubscribedSku]:
        """Licence counts per licence SKU in the customer's tenant."""
        return await self._all(self._url("customers", customer_id, "subscribedskus"), SubscribedSku, kind="app_user")

    async def user_licenses(self, customer_id: str, user_id: str) -> list[License]:
        return await self._all(
            self._url("customers", customer_id, "users", user_id, "licenses"), License, kind="app_user"
        )

    async def update_user_licenses(self, customer_id: str, user_id: str, update: LicenseUpdate) -> LicenseUpdate:
        """Assign and/or remove licences (one licence group per call); 60012 when none is free."""
        return await self._call(
            "POST",
            self._url("customers", customer_id, "users", user_id, "licenseupdates"),
            parse_model(LicenseUpdate),
            body=update.to_wire(),
            kind="app_user",
        )

    # --- Audit ------------------------------------------------------------------------------------

    async def audit_records(
        self,
        start: date | datetime,
        end: date | datetime | None = None,
        *,
        size: int = 500,
        filter: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[AuditRecord, None]:
        """Changes recorded by Partner Center (Microsoft keeps 90 days), page after page.

        `filter` is Microsoft's `{"Field", "Value", "Operator"}`, e.g. a customer id with "equals".
        """
        params = {"startDate": start.isoformat(), "size": str(size)}
        if end is not None:
            params["endDate"] = end.isoformat()
        if filter:
            params["filter"] = json.dumps(dict(filter), separators=(",", ":"))
        pages = self._pages(self._url("auditrecords"), AuditRecord, params=params)
        async with aclosing(pages):
            async for page in pages:
                for record in page.items:
                    yield record
