"""Partner Center's REST paths, served by the sandbox (`/v1/...`, and the price sheet on `/v1.0/...`).

Handlers are thin: read the path, query and body, call the backend inside one transaction, render
JSON. Creating POSTs go through `SandboxBackend.idempotent`, keyed by the caller's MS-RequestId.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from sandbox import errors as codes
from sandbox.backend import normalise
from sandbox.countries import COUNTRY_RULES, rules_for, validate_address
from sandbox.errors import SandboxError, invalid_input, not_found
from sandbox.resources import collection, customer_json
from sandbox.runtime import RUNTIME

_PRICE_SHEET = re.compile(r"^pricesheets\(market='([a-z]{2})',pricesheetview='([a-z_]+)'\)$", re.IGNORECASE)


async def _json(request: web.Request) -> Any:
    if not request.can_read_body:
        raise invalid_input("a JSON body is required")
    try:
        return await request.json()
    except (ValueError, UnicodeDecodeError):
        raise invalid_input("the body is not valid JSON") from None


def _idempotency_key(request: web.Request) -> str | None:
    request_id = request.headers.get("MS-RequestId", "").strip()
    return f"{request.method} {request.path.lower()} {request_id.lower()}" if request_id else None


def _size(request: web.Request) -> int | None:
    raw = request.query.get("size")
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise invalid_input("size must be a whole number") from None


def _token(request: web.Request) -> str | None:
    return request.headers.get("MS-ContinuationToken") or request.query.get("continuationToken") or None


def _country(request: web.Request) -> str:
    country = request.query.get("country", "").strip().upper()
    if not country:
        raise invalid_input("the country query parameter is required")
    if rules_for(country) is None:
        raise SandboxError(400, 800070, "Offer is not available in the specified country")
    return country


# utilities ---------------------------------------------------------------------------------------


async def domain_exists(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        taken = await backend.customers.domain_taken(tx, request.match_info["domain"])
    return web.Response(status=200 if taken else 404)


async def country_rules(request: web.Request) -> web.Response:
    rules = COUNTRY_RULES.get(request.match_info["country"].upper())
    if rules is None:
        raise not_found(
            codes.NOT_FOUND, f"No validation rules were found for the country/region {request.match_info['country']}"
        )
    return web.json_response(rules)


async def address_validation(request: web.Request) -> web.Response:
    body = normalise(await _json(request))
    if not isinstance(body, dict):
        raise invalid_input("the body must be an Address")
    return web.json_response(validate_address(body))


# customers and agreements ------------------------------------------------------------------------


async def relationship_request(request: web.Request) -> web.Response:
    partner = request.app[RUNTIME].backend.settings.partner_id
    url = (
        "https://admin.microsoft.com/Adminportal/Home?invType=ResellerRelationship"
        f"&partnerId={partner}#/BillingAccounts/partner-invitation"
    )
    return web.json_response({"url": url, "attributes": {"objectType": "RelationshipRequest"}})


async def create_customer(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    return await _create_with(request, lambda tx: backend.customers.create(tx, body))


async def _create_with(
    request: web.Request, produce: Callable[[Any], Awaitable[dict[str, Any]]], *, sent: Any = None
) -> web.Response:
    """A creating POST under the caller's MS-RequestId; `sent` is the body, where the answer echoes
    part of it (a new user's password)."""
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:

        async def run() -> tuple[int, dict[str, Any]]:
            return 201, await produce(tx)

        status, answer = await backend.idempotent(tx, _idempotency_key(request), run, sent=sent)
    return web.json_response(answer, status=status)


async def list_customers(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.customers.listing(
            tx, filter_text=request.query.get("filter"), size=_size(request), token=_token(request)
        )
    return web.json_response(answer)


async def get_customer(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        customer = await backend.customers.get(tx, request.match_info["customer_id"])
    return web.json_response(customer_json(customer))


async def agreement_metadata(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].backend.agreements.metadata(request.query.get("agreementType")))


async def create_agreement(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    return await _create_with(request, lambda tx: backend.agreements.add(tx, request.match_info["customer_id"], body))


async def list_agreements(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.agreements.listing(tx, request.match_info["customer_id"])
    return web.json_response(answer)


# catalog -----------------------------------------------------------------------------------------


async def list_products(request: web.Request) -> web.Response:
    catalog = request.app[RUNTIME].backend.catalog
    country = _country(request)
    view = request.query.get("targetView", "OnlineServices").lower()
    segment = request.query.get("targetSegment", "commercial").lower()
    products = catalog.products() if view == "onlineservices" and segment == "commercial" else []
    return web.json_response(
        collection(
            [catalog.product_json(product, country) for product in products],
            f"/products?country={country}&targetView=OnlineServices&targetSegment=commercial",
        )
    )


async def get_product(request: web.Request) -> web.Response:
    catalog = request.app[RUNTIME].backend.catalog
    country = _country(request)
    return web.json_response(catalog.product_json(catalog.product(request.match_info["product_id"]), country))


async def list_skus(request: web.Request) -> web.Response:
    catalog = request.app[RUNTIME].backend.catalog
    country = _country(request)
    product = catalog.product(request.match_info["product_id"])
    skus = [catalog.sku_json(catalog.sku(product["id"], sku["id"]), country) for sku in product["skus"]]
    return web.json_response(collection(skus, f"/products/{product['id']}/skus?country={country}"))


async def get_sku(request: web.Request) -> web.Response:
    catalog = request.app[RUNTIME].backend.catalog
    country = _country(request)
    ref = catalog.sku(request.match_info["product_id"], request.match_info["sku_id"])
    return web.json_response(catalog.sku_json(ref, country))


async def list_availabilities(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    country = _country(request)
    ref = backend.catalog.sku(request.match_info["product_id"], request.match_info["sku_id"])
    items = backend.catalog.availabilities_json(ref, country, backend.clock.now())
    return web.json_response(
        collection(items, f"/products/{ref.product['id']}/skus/{ref.sku['id']}/availabilities?country={country}")
    )


async def get_availability(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    country = _country(request)
    ref = backend.catalog.sku(request.match_info["product_id"], request.match_info["sku_id"])
    wanted = request.match_info["availability_id"].upper()
    for item in backend.catalog.availabilities_json(ref, country, backend.clock.now()):
        if item["id"] == wanted:
            return web.json_response(item)
    raise not_found(codes.NOT_FOUND, f"Availability {wanted} was not found (availability ids change over time).")


async def price_sheet(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    match = _PRICE_SHEET.match(request.match_info["sheet"])
    if match is None or request.match_info["value"] != "$value":
        raise not_found(codes.NOT_FOUND, "Unknown price sheet; use pricesheets(Market='US',PricesheetView='…')/$value")
    market, view = match.group(1).upper(), match.group(2).lower()
    if view != "updatedlicensebased":
        raise invalid_input("the sandbox serves the 'updatedlicensebased' (new commerce licence) view only")
    if rules_for(market) is None:
        raise invalid_input(f"no price sheet for market {market}")
    text = backend.catalog.price_sheet_csv(market, backend.clock.now())
    return web.Response(
        body=text.encode("utf-8"),
        content_type="application/octet-stream",
        headers={"Content-Disposition": "attachment; filename=sheets.csv"},
    )


# carts, orders, subscriptions --------------------------------------------------------------------


async def create_cart(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    return await _create_with(
        request, lambda tx: backend.orders.create_cart(tx, request.match_info["customer_id"], body)
    )


async def get_cart(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.orders.cart(tx, request.match_info["customer_id"], request.match_info["cart_id"])
    return web.json_response(answer)


async def checkout(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    return await _create_with(
        request,
        lambda tx: backend.orders.checkout(tx, request.match_info["customer_id"], request.match_info["cart_id"]),
    )


async def get_order(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.orders.order(tx, request.match_info["customer_id"], request.match_info["order_id"])
    return web.json_response(answer)


async def list_subscriptions(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.subscriptions.listing(
            tx, request.match_info["customer_id"], request.query.get("order_id")
        )
    return web.json_response(answer)


async def get_subscription(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.subscriptions.get(
            tx, request.match_info["customer_id"], request.match_info["subscription_id"]
        )
    return web.json_response(answer)


async def patch_subscription(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    async with backend.transaction() as tx:
        answer = await backend.subscriptions.update(
            tx,
            request.match_info["customer_id"],
            request.match_info["subscription_id"],
            body,
            request.headers.get("If-Match"),
        )
    return web.json_response(answer)


async def list_addons(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.subscriptions.addons(
            tx, request.match_info["customer_id"], request.match_info["subscription_id"]
        )
    return web.json_response(answer)


# users and licences ------------------------------------------------------------------------------


async def list_users(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.users.listing(tx, request.match_info["customer_id"], _size(request), _token(request))
    return web.json_response(answer)


async def create_user(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    return await _create_with(
        request, lambda tx: backend.users.create(tx, request.match_info["customer_id"], body), sent=body
    )


async def get_user(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.users.get(tx, request.match_info["customer_id"], request.match_info["user_id"])
    return web.json_response(answer)


async def patch_user(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    async with backend.transaction() as tx:
        answer = await backend.users.update(tx, request.match_info["customer_id"], request.match_info["user_id"], body)
    return web.json_response(answer)


async def delete_user(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        await backend.users.delete(tx, request.match_info["customer_id"], request.match_info["user_id"])
    return web.Response(status=204)


async def user_licences(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.licences.of_user(tx, request.match_info["customer_id"], request.match_info["user_id"])
    return web.json_response(answer)


async def licence_updates(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _json(request)
    return await _create_with(
        request,
        lambda tx: backend.licences.update(tx, request.match_info["customer_id"], request.match_info["user_id"], body),
    )


async def subscribed_skus(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.licences.subscribed_skus(
            tx, request.match_info["customer_id"], request.query.get("licenseGroupIds")
        )
    return web.json_response(answer)


async def audit_records(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        answer = await backend.audit.records(
            tx,
            start=request.query.get("startDate"),
            end=request.query.get("endDate"),
            filter_text=request.query.get("filter"),
            size=_size(request),
            token=_token(request),
        )
    return web.json_response(answer)


async def operation_status(request: web.Request) -> web.Response:
    """The Location of a `202 Accepted`: 202 while polls remain, then the real answer."""
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        operation = await tx.get("operation", request.match_info["operation_id"].lower())
        if operation is None:
            raise not_found(codes.NOT_FOUND, "Operation not found.")
        if operation["pollsLeft"] > 0:
            operation["pollsLeft"] -= 1
            await tx.put("operation", operation["id"], operation)
            return web.json_response(
                {"status": "InProgress"},
                status=202,
                headers={"Location": operation["location"], "Retry-After": str(operation["retryAfter"])},
            )
        body = operation["body"]
        if isinstance(body, dict):
            body = await backend.restore_passwords(tx, body, operation.get("withheld", []), None)
    return web.Response(status=operation["status"], body=json.dumps(body).encode(), content_type="application/json")


def add_routes(app: web.Application) -> None:
    """Register Partner Center's paths. Literal paths come before `{customer_id}` patterns."""
    customer = "/v1/customers/{customer_id}"
    app.router.add_route("HEAD", "/v1/domains/{domain}", domain_exists)
    app.router.add_get("/v1/countryvalidationrules/{country}", country_rules)
    app.router.add_post("/v1/validations/address", address_validation)
    app.router.add_get("/v1/customers/relationshiprequests", relationship_request)
    app.router.add_post("/v1/customers", create_customer)
    app.router.add_get("/v1/customers", list_customers)
    app.router.add_get(customer, get_customer)
    app.router.add_get("/v1/agreements", agreement_metadata)
    app.router.add_post(f"{customer}/agreements", create_agreement)
    app.router.add_get(f"{customer}/agreements", list_agreements)
    app.router.add_get("/v1/products", list_products)
    app.router.add_get("/v1/products/{product_id}", get_product)
    app.router.add_get("/v1/products/{product_id}/skus", list_skus)
    app.router.add_get("/v1/products/{product_id}/skus/{sku_id}", get_sku)
    app.router.add_get("/v1/products/{product_id}/skus/{sku_id}/availabilities", list_availabilities)
    app.router.add_get("/v1/products/{product_id}/skus/{sku_id}/availabilities/{availability_id}", get_availability)
    app.router.add_get("/v1.0/sales/{sheet}/{value}", price_sheet)
    app.router.add_post(f"{customer}/carts", create_cart)
    app.router.add_get(f"{customer}/carts/{{cart_id}}", get_cart)
    app.router.add_post(f"{customer}/carts/{{cart_id}}/checkout", checkout)
    app.router.add_get(f"{customer}/orders/{{order_id}}", get_order)
    app.router.add_get(f"{customer}/subscriptions", list_subscriptions)
    app.router.add_get(f"{customer}/subscriptions/{{subscription_id}}", get_subscription)
    app.router.add_patch(f"{customer}/subscriptions/{{subscription_id}}", patch_subscription)
    app.router.add_get(f"{customer}/subscriptions/{{subscription_id}}/addons", list_addons)
    app.router.add_get(f"{customer}/users", list_users)
    app.router.add_post(f"{customer}/users", create_user)
    app.router.add_get(f"{customer}/users/{{user_id}}", get_user)
    app.router.add_patch(f"{customer}/users/{{user_id}}", patch_user)
    app.router.add_delete(f"{customer}/users/{{user_id}}", delete_user)
    app.router.add_get(f"{customer}/users/{{user_id}}/licenses", user_licences)
    app.router.add_post(f"{customer}/users/{{user_id}}/licenseupdates", licence_updates)
    app.router.add_get(f"{customer}/subscribedskus", subscribed_skus)
    app.router.add_get("/v1/auditrecords", audit_records)
    app.router.add_get("/v1/operations/{operation_id}", operation_status)
