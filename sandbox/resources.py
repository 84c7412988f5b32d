"""Wire shapes: the sandbox's stored documents rendered as Partner Center resources (camelCase).

Stored documents hold what the rules need (dates as ISO strings, refund windows per seat); these
pure functions turn them into the JSON Microsoft returns, so the contract lives in one place.
Links are relative without the `/v1` prefix, as in Microsoft's responses.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sandbox.catalog import Catalog
from sandbox.clock import (
    billing_cycle_end,
    iso,
    parse_instant,
    start_of_day,
    term_end_instant,
)

MCA_TEMPLATE_ID = "117a77b0-9360-443b-8795-c6dedc750cf9"
MCA_LINK = "https://aka.ms/customeragreement"


def link(uri: str, headers: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": headers or []}


def collection(
    items: list[dict[str, Any]], self_uri: str, *, next_uri: str | None = None, token: str | None = None
) -> dict[str, Any]:
    """Microsoft's collection envelope; `links.next` carries the continuation token as a header."""
    links: dict[str, Any] = {"self": link(self_uri)}
    if next_uri is not None and token is not None:
        links["next"] = link(next_uri, [{"key": "MS-ContinuationToken", "value": token}])
    return {"totalCount": len(items), "items": items, "links": links, "attributes": {"objectType": "Collection"}}


def etag(document_id: str, version: int) -> str:
    raw = json.dumps({"id": document_id[:8], "version": version}, separators=(",", ":")).encode()
    return base64.b64encode(raw).decode()


def customer_json(customer: dict[str, Any], *, credentials: dict[str, str] | None = None) -> dict[str, Any]:
    cid = customer["id"]
    billing = dict(customer["billingProfile"])
    billing["attributes"] = {"etag": str(customer.get("billingEtag", "1")), "objectType": "CustomerBillingProfile"}
    body: dict[str, Any] = {
        "id": cid,
        "commerceId": customer["commerceId"],
        "companyProfile": {
            "tenantId": cid,
            "domain": customer["domain"],
            "companyName": billing.get("companyName", ""),
            "links": {"self": link(f"/customers/{cid}/profiles/company")},
            "attributes": {"objectType": "CustomerCompanyProfile"},
        },
        "billingProfile": billing,
        "relationshipToPartner": customer.get("relationshipToPartner", "reseller"),
        "allowDelegatedAccess": True,
        "links": {"self": link(f"/customers/{cid}")},
        "attributes": {"objectType": "Customer"},
    }
    if customer.get("organizationRegistrationNumber"):
        body["companyProfile"]["organizationRegistrationNumber"] = customer["organizationRegistrationNumber"]
    if credentials is not None:
        body["userCredentials"] = credentials
    return body


def agreement_json(agreement: dict[str, Any]) -> dict[str, Any]:
    return dict(agreement, attributes={"objectType": "Agreement"})


def user_json(user: dict[str, Any], *, password: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "usageLocation": user.get("usageLocation"),
        "id": user["id"],
        "userPrincipalName": user["userPrincipalName"],
        "firstName": user.get("firstName", ""),
        "lastName": user.get("lastName", ""),
        "displayName": user.get("displayName", ""),
        "lastDirectorySyncTime": None,
        "userDomainType": "none",
        "state": user.get("state", "active"),
        "softDeletionTime": user.get("softDeletionTime"),
        # Microsoft Graph's user property (Partner Center's CustomerUser has none): a sandbox extension.
        "signInActivity": {"lastSignInDateTime": user.get("lastSignInDateTime")},
        "links": {"self": link(f"/customers/{user['customerId']}/users/{user['id']}")},
        "attributes": {"objectType": "CustomerUser"},
    }
    if password is not None:
        body["passwordProfile"] = password
    return body


def product_sku_json(catalog: Catalog, licence_sku_id: str) -> dict[str, Any]:
    ref = catalog.by_licence(licence_sku_id)
    return {
        "id": licence_sku_id,
        "name": ref.sku["title"] if ref else licence_sku_id,
        "skuPartNumber": ref.sku["skuPartNumber"] if ref else "",
        "targetType": ref.sku["targetType"] if ref else "User",
        "licenseGroupId": "group1",
    }


def service_plans_json(catalog: Catalog, licence_sku_id: str, status: str = "Enabled") -> list[dict[str, Any]]:
    ref = catalog.by_licence(licence_sku_id)
    if ref is None:
        return []
    return [dict(plan, capabilityStatus=status, targetType=ref.sku["targetType"]) for plan in ref.sku["servicePlans"]]


def license_json(catalog: Catalog, licence_sku_id: str) -> dict[str, Any]:
    return {
        "servicePlans": service_plans_json(catalog, licence_sku_id),
        "productSku": product_sku_json(catalog, licence_sku_id),
        "attributes": {"objectType": "License"},
    }


def subscribed_sku_json(catalog: Catalog, licence_sku_id: str, counts: dict[str, int]) -> dict[str, Any]:
    active, suspended = counts["active"], counts["suspended"]
    status = "Enabled" if active else ("Suspended" if suspended else "Deleted")
    return {
        "availableUnits": max(active - counts["consumed"], 0),
        "activeUnits": active,
        "consumedUnits": counts["consumed"],
        "suspendedUnits": suspended,
        "totalUnits": active + suspended,
        "warningUnits": 0,
        "productSku": product_sku_json(catalog, licence_sku_id),
        "servicePlans": service_plans_json(catalog, licence_sku_id, status),
        "capabilityStatus": status,
        "attributes": {"objectType": "SubscribedSku"},
    }


def refundable_details(subscription: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """Seats still inside their own refund window, newest last."""
    if subscription["status"] not in ("active", "suspended"):
        return []
    return [
        detail
        for detail in subscription.get("refundable", [])
        if detail["quantity"] > 0 and parse_instant(detail["allowedUntil"]) > now
    ]


def subscription_json(catalog: Catalog, subscription: dict[str, Any], now: datetime) -> dict[str, Any]:
    sid, cid = subscription["id"], subscription["customerId"]
    pid, sku_id, availability = subscription["productId"], subscription["skuId"], subscription["availabilityId"]
    country = subscription.get("country", "US")
    ref = catalog.find_sku(pid, sku_id)
    start = parse_instant(subscription["effectiveStartDate"])
    commitment_end = parse_instant(subscription["commitmentEndDate"])
    cancellation_until = parse_instant(subscription["cancellationAllowedUntilDate"])
    status = subscription["status"]
    live = status in ("active", "suspended")
    details = refundable_details(subscription, now)
    in_window = live and now <= cancellation_until
    actions = ["edit"] if live else []
    if in_window:
        actions.append("cancel")
    if status == "suspended":
        actions.append("reactivate")
    links: dict[str, Any] = {
        "product": link(f"/products/{pid}?country={country}"),
        "sku": link(f"/products/{pid}/skus/{sku_id}?country={country}"),
        "availability": link(f"/products/{pid}/skus/{sku_id}/availabilities/{availability}?country={country}"),
        "self": link(f"/customers/{cid}/subscriptions/{sid}"),
    }
    if subscription.get("parentSubscriptionId"):
        links["parentSubscription"] = link(f"/customers/{cid}/subscriptions/{subscription['parentSubscriptionId']}")
    body: dict[str, Any] = {
        "id": sid,
        "offerId": f"{pid}:{sku_id}:{availability}",
        "offerName": subscription["offerName"],
        "friendlyName": subscription["friendlyName"],
        "productType": {"id": "OnlineServices", "displayName": "OnlineServices"},
        "quantity": subscription["quantity"],
        "unitType": "Licenses",
        "parentSubscriptionId": subscription.get("parentSubscriptionId"),
        "hasPurchasableAddons": catalog.has_addons(ref) if ref else False,
        "creationDate": subscription["creationDate"],
        "effectiveStartDate": subscription["effectiveStartDate"],
        "commitmentEndDate": subscription["commitmentEndDate"],
        "cancellationAllowedUntilDate": subscription["cancellationAllowedUntilDate"],
        "billingCycleEndDate": iso(
            billing_cycle_end(start_of_day(start), subscription["billingCycle"], now, term_end_instant(commitment_end))
        ),
        "status": status,
        "autoRenewEnabled": subscription["autoRenewEnabled"],
        "refundableQuantity": {
            "totalQuantity": sum(detail["quantity"] for detail in details),
            "details": [
                {"quantity": detail["quantity"], "allowedUntilDateTime": detail["allowedUntil"]} for detail in details
            ],
        },
        "refundOptions": [{"type": "partial", "expiresAt": subscription["cancellationAllowedUntilDate"]}]
        if in_window
        else [],
        "isTrial": False,
        "billingType": "license",
        "billingCycle": subscription["billingCycle"],
        "termDuration": subscription["termDuration"],
        "renewalTermDuration": "",
        "isMicrosoftProduct": True,
        "partnerId": "",
        "suspensionReasons": list(subscription.get("suspensionReasons", [])),
        "actions": actions,
        "contractType": "subscription",
        "links": links,
        "publisherName": catalog.publisher,
        "orderId": subscription["orderId"],
        "attributes": {"etag": etag(sid, subscription["version"]), "objectType": "Subscription"},
    }
    if subscription.get("scheduledNextTermInstructions"):
        body["scheduledNextTermInstructions"] = subscription["scheduledNextTermInstructions"]
    return body


def order_json(order: dict[str, Any], *, status: str | None = None) -> dict[str, Any]:
    oid, cid = order["id"], order["customerId"]
    return {
        "id": oid,
        "alternateId": oid,
        "referenceCustomerId": cid,
        "billingCycle": order["billingCycle"],
        "currencyCode": order.get("currencyCode", "USD"),
        "currencySymbol": "$",
        "lineItems": [
            dict(line, links={"subscription": link(f"/customers/{cid}/subscriptions/{line['subscriptionId']}")})
            for line in order["lineItems"]
        ],
        "creationDate": order["creationDate"],
        "status": status or order["status"],
        "transactionType": "UserPurchase",
        "links": {
            "provisioningStatus": link(f"/customers/{cid}/orders/{oid}/provisioningstatus"),
            "self": link(f"/customers/{cid}/orders/{oid}"),
        },
        "attributes": {"objectType": "Order"},
    }


def cart_json(cart: dict[str, Any], orders: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": cart["id"],
        "creationTimestamp": cart["creationTimestamp"],
        "lastModifiedTimestamp": cart["lastModifiedTimestamp"],
        "expirationTimestamp": cart["expirationTimestamp"],
        "lastModifiedUser": cart.get("lastModifiedUser", ""),
        "status": cart["status"],
        "lineItems": cart["lineItems"],
        "links": {"self": link(f"/customers/{cart['customerId']}/carts/{cart['id']}")},
        "attributes": {"objectType": "Cart"},
    }
    if orders is not None:
        body["orders"] = orders
    return body
