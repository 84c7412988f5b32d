"""The sandbox app factory, its middlewares, and the runners the CLI and the embedded default use.

Middlewares, outermost first:
1. `edge` — echoes MS-CorrelationId / MS-RequestId on every answer and renders errors in
   Microsoft's `{code, description, data, source}` body (never a stack trace);
2. `authenticate` — every `/v1`, `/v1.0` and `/_sandbox` call needs `Authorization: Bearer <token>`;
3. `inject_faults` — the configured faults (before and after the handler) for `/v1` and `/v1.0`;
4. `throttle` — the per-customer token bucket for `/v1`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from sandbox import errors as codes
from sandbox.admin import add_admin_routes
from sandbox.api import add_routes
from sandbox.backend import SandboxBackend, SandboxSettings, withhold_passwords
from sandbox.catalog import Catalog, random_salt
from sandbox.clock import SandboxClock
from sandbox.errors import SandboxError
from sandbox.faults import FaultInjector, FaultRule, Throttle
from sandbox.runtime import RUNTIME, SandboxRuntime
from sandbox.store import Store
from services.db import create_engine

log = logging.getLogger("cspbot.sandbox")

_PROTECTED = ("/v1/", "/v1.0/", "/_sandbox")
_API = ("/v1/", "/v1.0/")
_CUSTOMER = re.compile(r"^/v1/customers/([0-9a-fA-F-]{36})(/|$)")
_BEFORE = frozenset({"throttle", "error", "drop"})
_AFTER = frozenset({"error_after_commit", "drop_after_commit", "accepted"})
_LATENCY = frozenset({"latency"})
_HTTP_CODES = {401: codes.TOKEN_MISSING, 404: codes.NOT_FOUND, 405: codes.INVALID_INPUT, 413: codes.INVALID_INPUT}


def _error_response(error: SandboxError) -> web.Response:
    response = web.json_response(error.body(), status=error.status)
    if error.status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="partner-center-sandbox"'
    return response


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    correlation = request.headers.get("MS-CorrelationId") or str(uuid.uuid4())
    request_id = request.headers.get("MS-RequestId") or str(uuid.uuid4())
    try:
        response = await handler(request)
    except SandboxError as error:
        response = _error_response(error)
    except web.HTTPException as error:
        if error.status < 400:
            raise
        response = _error_response(
            SandboxError(error.status, _HTTP_CODES.get(error.status, codes.INVALID_INPUT), error.reason)
        )
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("sandbox: unexpected error on %s %s", request.method, request.path)
        response = _error_response(SandboxError(500, codes.UNEXPECTED, "Unexpected service error"))
    response.headers["MS-CorrelationId"] = correlation
    response.headers["MS-RequestId"] = request_id
    response.headers["MS-ServerId"] = "sandbox"
    return response


@web.middleware
async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith(_PROTECTED):
        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise SandboxError(401, codes.TOKEN_MISSING, "Partner Token missing in request context")
        scheme, _, token = header.strip().partition(" ")
        accepted = request.app[RUNTIME].accepted_token
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), accepted.encode()):
            raise SandboxError(401, codes.ACCESS_DENIED, "Access denied")
    return await handler(request)


def _throttled(seconds: int) -> web.Response:
    """Microsoft's throttling answer: 429, Retry-After, and its `{statusCode, message}` body."""
    return web.json_response(
        {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} seconds."},
        status=429,
        headers={"Retry-After": str(seconds)},
    )


def _drop(request: web.Request) -> web.Response:
    """Close the connection under the client: it sees a disconnect, not an answer."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    return web.Response(status=204)


@web.middleware
async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not request.path.startswith(_API):
        return await handler(request)
    runtime = request.app[RUNTIME]
    method, path = request.method, request.path
    slow = runtime.faults.pick(method, path, _LATENCY)
    if slow is not None:
        await asyncio.sleep(slow.latency_ms / 1000)
    rule = runtime.faults.pick(method, path, _BEFORE)
    if rule is not None:
        if rule.kind == "throttle":
            return _throttled(rule.retry_after)
        if rule.kind == "drop":
            return _drop(request)
        raise SandboxError(rule.status or 500, codes.UNEXPECTED, "Unexpected service error (injected fault)")
    response = await handler(request)
    if response.status >= 300:
        return response
    rule = runtime.faults.pick(method, path, _AFTER)
    if rule is None:
        return response
    if rule.kind == "drop_after_commit":
        return _drop(request)
    if rule.kind == "error_after_commit":
        raise SandboxError(rule.status or 500, codes.UNEXPECTED, "Unexpected service error (injected after commit)")
    return await _accepted(request, response, rule)


async def _accepted(request: web.Request, response: web.StreamResponse, rule: FaultRule) -> web.Response:
    """Turn a finished answer into 202 + Location; the location replays it after `polls` polls."""
    body = response.body if isinstance(response, web.Response) else None
    answer = json.loads(body) if isinstance(body, bytes | bytearray) and body else None
    kept, withheld = withhold_passwords(answer) if isinstance(answer, dict) else (answer, [])
    operation_id = uuid.uuid4().hex
    location = f"/v1/operations/{operation_id}"
    backend = request.app[RUNTIME].backend
    async with backend.transaction() as tx:
        await tx.put(
            "operation",
            operation_id,
            {
                "id": operation_id,
                "status": response.status,
                "body": kept,
                "withheld": withheld,
                "pollsLeft": rule.polls,
                "retryAfter": rule.retry_after,
                "location": location,
            },
        )
    return web.Response(status=202, headers={"Location": location, "Retry-After": str(rule.retry_after)})


@web.middleware
async def throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        runtime = request.app[RUNTIME]
        match = _CUSTOMER.match(request.path)
        key = match.group(1).lower() if match else "partner"
        wait = runtime.throttle.take(key, runtime.backend.clock.now())
        if wait:
            return _throttled(wait)
    return await handler(request)


def create_sandbox_app(
    *,
    database_url: str,
    accepted_token: str,
    clock: SandboxClock | None = None,
    settings: SandboxSettings | None = None,
) -> web.Application:
    """The sandbox as an aiohttp application, persisted in `sandbox_*` tables of `database_url`.

    Without a `clock` it follows real time plus a persisted offset (so a moved clock survives a
    restart); with one, the caller owns time (tests pass a frozen clock)."""
    if not accepted_token:
        raise ValueError("the sandbox needs a non-empty accepted token")
    config = settings or SandboxSettings()
    app = web.Application(middlewares=[edge, authenticate, inject_faults, throttle])

    async def runtime_ctx(app: web.Application) -> AsyncIterator[None]:
        engine = create_engine(database_url)
        try:
            salt = config.availability_salt.encode() if config.availability_salt else random_salt()
            backend = SandboxBackend(Store(engine), Catalog.load(salt=salt), clock or SandboxClock(), config)
            await backend.start(restore_clock=clock is None)
            faults = FaultInjector(seed=config.fault_seed)
            for spec in config.faults:
                faults.add(FaultRule.from_json(spec))
            app[RUNTIME] = SandboxRuntime(
                backend=backend,
                faults=faults,
                throttle=Throttle(
                    enabled=config.throttle_enabled,
                    capacity=config.throttle_capacity,
                    refill_per_second=config.throttle_refill_per_second,
                ),
                accepted_token=accepted_token,
                persist_clock=clock is None,
            )
            yield
        finally:
            await engine.dispose()

    app.cleanup_ctx.append(runtime_ctx)
    add_routes(app)
    add_admin_routes(app)
    return app


@dataclass
class RunningSandbox:
    """A sandbox served on its own port inside a running event loop (the embedded default)."""

    runner: web.AppRunner
    url: str

    @property
    def clock(self) -> SandboxClock:
        """The sandbox's clock (moved by `POST /_sandbox/clock`): Microsoft's "now" for the app."""
        clock: SandboxClock = self.runner.app[RUNTIME].backend.clock
        return clock

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_sandbox(
    *,
    database_url: str,
    accepted_token: str,
    host: str = "127.0.0.1",
    port: int = 0,
    clock: SandboxClock | None = None,
    settings: SandboxSettings | None = None,
) -> RunningSandbox:
    """Serve the sandbox from the current loop; port 0 picks a free port. Returns its base URL."""
    runner = web.AppRunner(
        create_sandbox_app(database_url=database_url, accepted_token=accepted_token, clock=clock, settings=settings)
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return RunningSandbox(runner, f"http://{host}:{bound}")


def run_sandbox(port: int, database_url: str, token: str, *, host: str = "127.0.0.1") -> None:
    """Serve the sandbox alone until interrupted (`cspbot sandbox --port 8088`)."""
    log.info("Partner Center sandbox on http://%s:%d (admin endpoint /_sandbox)", host, port)
    web.run_app(create_sandbox_app(database_url=database_url, accepted_token=token), host=host, port=port, print=None)
