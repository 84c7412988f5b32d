"""Customers: a new tenant with its first admin, a reseller relationship accepted, the listing."""

from __future__ import annotations

import re
import secrets
import uuid
from typing import Any
from urllib.parse import quote

from sandbox import errors as codes
from sandbox.backend.core import Core, Resource, as_dict, as_text, new_password, normalise, parse_filter
from sandbox.backend.users import Users
from sandbox.clock import iso
from sandbox.countries import check_new_customer, rules_for
from sandbox.errors import SandboxError, invalid_input, invalid_property
from sandbox.resources import customer_json
from sandbox.store import Unit

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class Customers(Resource):
    """A new customer gets its first admin user (`Users`), so both are created in one transaction."""

    def __init__(self, core: Core, users: Users) -> None:
        super().__init__(core)
        self.users = users

    async def get(self, tx: Unit, customer_id: str) -> dict[str, Any]:
        return await self.core.customer(tx, customer_id)

    async def domain_taken(self, tx: Unit, domain: str) -> bool:
        return await tx.get("domain", domain.strip().lower()) is not None

    async def create(self, tx: Unit, raw: Any) -> dict[str, Any]:
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a Customer")
        company, billing = as_dict(body.get("companyProfile")), as_dict(body.get("billingProfile"))
        domain = check_new_customer(company, billing)
        if await self.domain_taken(tx, domain):
            raise invalid_property("DomainNotAvailable", f"The domain {domain} is not available.", status=409)
        address = as_dict(billing.get("defaultAddress"))
        rules = rules_for(as_text(address.get("country"))) or {}
        culture = next(
            (c for c in rules.get("supportedCulturesList", []) if c.lower() == as_text(billing.get("culture")).lower()),
            as_text(billing.get("culture")),
        )
        customer = await self._new_customer(
            tx,
            customer_id=str(uuid.uuid4()),
            domain=domain,
            billing={
                "id": str(uuid.uuid4()),
                "email": as_text(billing.get("email")),
                "culture": culture,
                "language": as_text(billing.get("language")).lower(),
                "companyName": as_text(billing.get("companyName")),
                "defaultAddress": {
                    key: (value.upper() if key in ("country", "state") else value)
                    for key, value in address.items()
                    if isinstance(value, str) and value.strip()
                },
            },
            registration=as_text(company.get("organizationRegistrationNumber")) or None,
            relationship="reseller",
        )
        password = new_password()
        admin = await self.users.new_user(
            tx,
            customer,
            upn=f"admin@{domain}",
            first=as_text(address.get("firstName")),
            last=as_text(address.get("lastName")),
            display=customer["billingProfile"]["companyName"],
            usage_location=as_text(address.get("country")).upper(),
        )
        await self.core.audit(
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
        tenant_id, company, domain = (as_text(body.get(key)) for key in ("tenantId", "companyName", "domain"))
        domain = domain.lower()
        if not GUID.match(tenant_id) or not company or not domain.endswith(".onmicrosoft.com"):
            raise invalid_input("tenantId (a GUID), companyName and domain (<name>.onmicrosoft.com) are required")
        if await tx.get("customer", tenant_id.lower()) is not None:
            raise SandboxError(409, codes.INVALID_PROPERTY, f"Tenant {tenant_id} is already a customer.")
        owner = await tx.get("domain", domain)
        if owner is not None and owner.get("customerId"):
            raise invalid_property("DomainNotAvailable", f"{domain} belongs to another customer.", status=409)
        country = (as_text(body.get("country")) or "US").upper()
        customer = await self._new_customer(
            tx,
            customer_id=tenant_id,
            domain=domain,
            billing={
                "id": str(uuid.uuid4()),
                "email": as_text(body.get("email")) or f"admin@{domain}",
                "culture": (rules_for(country) or {}).get("defaultCulture", "en-US"),
                "language": "en",
                "companyName": company,
                "defaultAddress": {"country": country},
            },
            registration=None,
            relationship="reseller",
        )
        await self.users.new_user(
            tx, customer, upn=f"admin@{domain}", first="", last="", display=company, usage_location=country
        )
        await self.core.audit(
            tx,
            customer,
            "partner_relationship",
            "create_partner_relationship",
            {"customerId": customer["id"], "relationshipType": "reseller"},
            data={"CustomerId": customer["id"]},
            actor=self.core.elsewhere_actor(customer),
        )
        return customer_json(customer)

    async def listing(
        self, tx: Unit, *, filter_text: str | None, size: int | None, token: str | None
    ) -> dict[str, Any]:
        customers = await tx.documents("customer")
        # The next link keeps the filter, or the following pages would list everyone.
        self_uri = f"/customers?filter={quote(filter_text, safe='')}" if filter_text else "/customers"
        if filter_text:
            field_name, value, operator = parse_filter(filter_text)
            if operator != "starts_with":
                raise invalid_input('the only supported filter operator is "starts_with"')
            if field_name == "domain":
                customers = [c for c in customers if c["domain"].startswith(value)]
            elif field_name == "companyname":
                customers = [c for c in customers if c["billingProfile"]["companyName"].lower().startswith(value)]
            else:
                raise invalid_input("filter Field must be Domain or CompanyName")
        return self.core.page([customer_json(c) for c in customers], self_uri, "customers", size, token)
