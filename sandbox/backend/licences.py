"""Licences: the customer's licence pools (subscribed SKUs) and assigning them to users."""

from __future__ import annotations

from typing import Any

from sandbox import errors as codes
from sandbox.backend.core import LIVE, Actor, Core, Resource, as_dict, as_text, normalise
from sandbox.backend.users import Users
from sandbox.errors import SandboxError, invalid_input, invalid_property
from sandbox.resources import collection, license_json, subscribed_sku_json
from sandbox.store import Unit


class Licences(Resource):
    """Units come from live subscriptions, consumption from users' licences (`Users`)."""

    def __init__(self, core: Core, users: Users) -> None:
        super().__init__(core)
        self.users = users

    async def counts(self, tx: Unit, customer_id: str) -> dict[str, dict[str, int]]:
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
        customer = await self.core.customer(tx, customer_id)
        wanted = {group.strip().lower() for group in (groups or "group1").split(",") if group.strip()}
        counts = await self.counts(tx, customer["id"])
        items = (
            [subscribed_sku_json(self.catalog, sku, value) for sku, value in counts.items()]
            if "group1" in wanted
            else []
        )
        return collection(items, f"/customers/{customer['id']}/subscribedskus")

    async def of_user(self, tx: Unit, customer_id: str, user_id: str) -> dict[str, Any]:
        customer = await self.core.customer(tx, customer_id)
        user = await self.users.find(tx, customer, user_id)
        return collection(
            [license_json(self.catalog, sku) for sku in user["licenses"]],
            f"/customers/{customer['id']}/users/{user['id']}/licenses",
        )

    async def update(
        self, tx: Unit, customer_id: str, user_id: str, raw: Any, *, actor: Actor | None = None
    ) -> dict[str, Any]:
        """LicenseUpdate: assign and remove licence SKUs. A user needs a usage location, and a SKU
        with no free unit fails with 60012, as Microsoft answers."""
        customer = await self.core.customer(tx, customer_id)
        user = await self.users.find(tx, customer, user_id)
        body = normalise(raw)
        if not isinstance(body, dict):
            raise invalid_input("the body must be a LicenseUpdate")
        to_assign = [
            as_text(as_dict(item).get("skuId")).lower()
            for item in (body.get("licensesToAssign") or [])
            if as_dict(item)
        ]
        to_remove = [
            (as_text(item) or as_text(as_dict(item).get("skuId"))).lower()
            for item in (body.get("licensesToRemove") or [])
        ]
        if not to_assign and not to_remove:
            raise invalid_input("licensesToAssign or licensesToRemove is required")
        if to_assign and not user.get("usageLocation"):
            raise invalid_property(
                "UsageLocation", "License assignment failed because the user's usage location is not set."
            )
        counts = await self.counts(tx, customer["id"])
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
        await self.core.audit(
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
