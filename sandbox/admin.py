"""The sandbox-only admin endpoint under `/_sandbox/` (the real Partner Center has nothing like it).

It moves the clock (renewals, expiries and ends of term follow), configures faults and throttling,
accepts a pending reseller relationship as the customer's admin would, and changes users and
licences "elsewhere" — as the customer's own admin in the Microsoft 365 admin center — so sync
code can be tested. Changes made here are audited like any other.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from sandbox.backend import normalise
from sandbox.clock import Duration, iso, parse_instant
from sandbox.errors import invalid_input, not_found
from sandbox.faults import FaultRule
from sandbox.runtime import RUNTIME

ENDPOINTS = {
    "GET /_sandbox/clock": "the sandbox time",
    "POST /_sandbox/clock": '{"advance": "P1M"} or {"set": "2030-01-01T00:00:00Z"}; processes ended terms',
    "GET /_sandbox/faults": "configured faults with their matched/fired counts",
    "POST /_sandbox/faults": '{"kind", "method", "path", "nth"|"rate", "repeat", "status", "retryAfter", '
    '"latencyMs", "polls"}',
    "DELETE /_sandbox/faults[/{id}]": "remove one or all faults",
    "GET|POST /_sandbox/throttle": '{"enabled", "capacity", "refillPerSecond"}',
    "POST /_sandbox/relationships/accept": '{"tenantId", "companyName", "domain", "country"?}',
    "DELETE /_sandbox/customers/{id}/agreements": "no agreement on record (a customer from before the MCA)",
    "POST /_sandbox/customers/{id}/users": "create a user elsewhere (usageLocation optional)",
    "PATCH /_sandbox/customers/{id}/users/{userId}": "rename or change a user elsewhere",
    "DELETE /_sandbox/customers/{id}/users/{userId}": "delete a user elsewhere",
    "POST /_sandbox/customers/{id}/users/{userId}/licenses": '{"assign": [skuId], "remove": [skuId]}',
    "POST /_sandbox/customers/{id}/users/{userId}/signins": '{"at"?: ISO-8601}; the user signed in (default now)',
}


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except ValueError:
        raise invalid_input("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid_input("the body must be a JSON object")
    return body


async def index(_request: web.Request) -> web.Response:
    return web.json_response({"endpoints": ENDPOINTS})


def _clock_json(request: web.Request) -> dict[str, Any]:
    clock = request.app[RUNTIME].backend.clock
    return {"now": iso(clock.now()), "frozen": clock.frozen}


async def get_clock(request: web.Request) -> web.Response:
    return web.json_response(_clock_json(request))


async def move_clock(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body = await _body(request)
    clock = runtime.backend.clock
    try:
        if isinstance(body.get("advance"), str):
            duration = Duration.parse(body["advance"])
            clock.advance(duration)
        elif isinstance(body.get("set"), str):
            clock.set(parse_instant(body["set"]))
        else:
            raise invalid_input('give {"advance": "<ISO-8601 duration>"} or {"set": "<ISO-8601 instant>"}')
    except ValueError as error:
        raise invalid_input(str(error)) from None
    if runtime.persist_clock:
        await runtime.backend.save_clock()
    summary = await runtime.backend.roll_terms()
    return web.json_response(_clock_json(request) | {"termEnds": summary.to_json()})


async def list_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": [rule.to_json() for rule in request.app[RUNTIME].faults.rules()]})


async def add_fault(request: web.Request) -> web.Response:
    try:
        rule = FaultRule.from_json(await _body(request))
    except ValueError as error:
        raise invalid_input(str(error)) from None
    request.app[RUNTIME].faults.add(rule)
    return web.json_response(rule.to_json(), status=201)


async def clear_faults(request: web.Request) -> web.Response:
    request.app[RUNTIME].faults.clear()
    return web.Response(status=204)


async def remove_fault(request: web.Request) -> web.Response:
    if not request.app[RUNTIME].faults.remove(request.match_info["fault_id"]):
        raise not_found(1000, "No such fault.")
    return web.Response(status=204)


async def get_throttle(request: web.Request) -> web.Response:
    return web.json_response(request.app[RUNTIME].throttle.to_json())


async def set_throttle(request: web.Request) -> web.Response:
    throttle = request.app[RUNTIME].throttle
    body = await _body(request)
    try:
        throttle.configure(
            enabled=bool(body.get("enabled", True)),
            capacity=int(body.get("capacity", throttle.capacity)),
            refill_per_second=float(body.get("refillPerSecond", throttle.refill_per_second)),
        )
    except (TypeError, ValueError) as error:
        raise invalid_input(str(error)) from None
    return web.json_response(throttle.to_json())


async def accept_relationship(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _body(request)
    async with backend.transaction() as tx:
        customer = await backend.customers.accept_relationship(tx, body)
    return web.json_response(customer, status=201)


async def forget_agreements(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        removed = await backend.agreements.forget(tx, request.match_info["customer_id"])
    return web.json_response({"removed": removed})


async def create_user_elsewhere(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _body(request)
    async with backend.transaction() as tx:
        customer = await backend.customers.get(tx, request.match_info["customer_id"])
        user = await backend.users.create(
            tx, customer["id"], body, actor=backend.elsewhere_actor(customer), require_location=False
        )
    return web.json_response(user, status=201)


async def update_user_elsewhere(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _body(request)
    async with backend.transaction() as tx:
        customer = await backend.customers.get(tx, request.match_info["customer_id"])
        user = await backend.users.update(
            tx, customer["id"], request.match_info["user_id"], body, actor=backend.elsewhere_actor(customer)
        )
    return web.json_response(user)


async def delete_user_elsewhere(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        customer = await backend.customers.get(tx, request.match_info["customer_id"])
        await backend.users.delete(
            tx, customer["id"], request.match_info["user_id"], actor=backend.elsewhere_actor(customer)
        )
    return web.Response(status=204)


async def licences_elsewhere(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = normalise(await _body(request))
    update = {
        "licensesToAssign": [{"skuId": sku} for sku in body.get("assign", []) if isinstance(sku, str)],
        "licensesToRemove": [sku for sku in body.get("remove", []) if isinstance(sku, str)],
    }
    async with backend.transaction() as tx:
        customer = await backend.customers.get(tx, request.match_info["customer_id"])
        result = await backend.licences.update(
            tx, customer["id"], request.match_info["user_id"], update, actor=backend.elsewhere_actor(customer)
        )
    return web.json_response(result)


async def sign_in_elsewhere(request: web.Request) -> web.Response:
    backend = request.app[RUNTIME].backend
    body = await _body(request)
    async with backend.transaction() as tx:
        user = await backend.users.sign_in(tx, request.match_info["customer_id"], request.match_info["user_id"], body)
    return web.json_response(user)


def add_admin_routes(app: web.Application) -> None:
    users = "/_sandbox/customers/{customer_id}/users"
    app.router.add_get("/_sandbox", index)
    app.router.add_get("/_sandbox/clock", get_clock)
    app.router.add_post("/_sandbox/clock", move_clock)
    app.router.add_get("/_sandbox/faults", list_faults)
    app.router.add_post("/_sandbox/faults", add_fault)
    app.router.add_delete("/_sandbox/faults", clear_faults)
    app.router.add_delete("/_sandbox/faults/{fault_id}", remove_fault)
    app.router.add_get("/_sandbox/throttle", get_throttle)
    app.router.add_post("/_sandbox/throttle", set_throttle)
    app.router.add_post("/_sandbox/relationships/accept", accept_relationship)
    app.router.add_delete("/_sandbox/customers/{customer_id}/agreements", forget_agreements)
    app.router.add_post(users, create_user_elsewhere)
    app.router.add_patch(f"{users}/{{user_id}}", update_user_elsewhere)
    app.router.add_delete(f"{users}/{{user_id}}", delete_user_elsewhere)
    app.router.add_post(f"{users}/{{user_id}}/licenses", licences_elsewhere)
    app.router.add_post(f"{users}/{{user_id}}/signins", sign_in_elsewhere)
