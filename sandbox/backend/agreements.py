"""Agreements: the Microsoft Customer Agreement's metadata and a customer's attestations."""

from __future__ import annotations

import uuid
from typing import Any

from sandbox.backend.core import Resource, as_dict, as_text, normalise
from sandbox.clock import iso, parse_instant
from sandbox.errors import invalid_input, invalid_property
from sandbox.resources import MCA_LINK, MCA_TEMPLATE_ID, agreement_json, collection
from sandbox.store import Unit


class Agreements(Resource):
    def metadata(self, agreement_type: str | None) -> dict[str, Any]:
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

    async def add(self, tx: Unit, customer_id: str, raw: Any) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be an Agreement")
        contact = as_dict(body.get("primaryContact"))
        if as_text(body.get("templateId")).lower() != MCA_TEMPLATE_ID:
            raise invalid_property("TemplateId", "The templateId must be the Microsoft Customer Agreement's.")
        if as_text(body.get("type") or "MicrosoftCustomerAgreement") != "MicrosoftCustomerAgreement":
            raise invalid_property("Type", "The type must be MicrosoftCustomerAgreement.")
        missing = [name for name in ("firstName", "lastName", "email") if not as_text(contact.get(name))]
        if missing:
            raise invalid_property("PrimaryContact", f"primaryContact needs {', '.join(missing)}.")
        try:
            agreed = parse_instant(as_text(body.get("dateAgreed")))
        except ValueError:
            raise invalid_property("DateAgreed", "dateAgreed must be a UTC date-time.") from None
        agreement = {
            "userId": str(uuid.uuid4()),
            "primaryContact": {
                key: as_text(contact.get(key)) for key in ("firstName", "lastName", "email", "phoneNumber")
            },
            "templateId": MCA_TEMPLATE_ID,
            "dateAgreed": iso(agreed),
            "type": "MicrosoftCustomerAgreement",
        }
        customer["agreements"].append(agreement)
        await tx.put("customer", customer["id"], customer, customer_id=customer["id"])
        await self.core.audit(tx, customer, "customer", "create_customer_agreement", agreement, data={"Type": "MCA"})
        return agreement_json(agreement)

    async def forget(self, tx: Unit, customer_id: str) -> int:
        """The customer has no Microsoft Customer Agreement on record (as one that bought before the
        MCA existed): Microsoft then refuses its new purchases with 13605. How many were taken off."""
        customer = await self.core.customer(tx, customer_id)
        removed, customer["agreements"] = len(customer["agreements"]), []
        await tx.put("customer", customer["id"], customer, customer_id=customer["id"])
        await self.core.audit(tx, customer, "customer", "remove_customer_agreements", {"removed": removed})
        return removed

    async def listing(self, tx: Unit, customer_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        return collection(
            [agreement_json(a) for a in customer["agreements"]], f"/customers/{customer['id']}/agreements"
        )
