"""`GET /metrics`: the process's Prometheus metrics (services/metrics.py), for a scraper only.

The bot's port faces Teams, so the endpoint is closed by default to everyone but this machine: with
METRICS_TOKEN set, a request needs `Authorization: Bearer <token>` (compared in constant time); without
it, only a direct loopback request is answered — one that came through a reverse proxy on this machine
(it carries `Forwarded`, `X-Forwarded-For` or `X-Real-IP`) is refused like a remote one. Nothing in the
answer names a user, an organisation or a secret (bounded labels, see services/metrics.py).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from services.metrics import Metrics, Snapshot

log = logging.getLogger(__name__)

_PROXY_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Real-IP")


def _direct_from_loopback(request: web.Request) -> bool:
    if any(header in request.headers for header in _PROXY_HEADERS):
        return False
    try:
        return request.remote is not None and ipaddress.ip_address(request.remote).is_loopback
    except ValueError:  # a Unix socket or an unparsable peer
        return False


def _refusal(request: web.Request, token: str) -> web.Response | None:
    """None when the request may read the metrics, else the answer that refuses it."""
    if token:
        scheme, _, given = request.headers.get("Authorization", "").strip().partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        return web.json_response(
            {"error": "/metrics needs the METRICS_TOKEN as a bearer token."},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    if _direct_from_loopback(request):
        return None
    return web.json_response(
        {"error": "/metrics is answered only on this machine; set METRICS_TOKEN to scrape it from elsewhere."},
        status=403,
    )


def metrics_handler(
    metrics: Metrics,
    token: str,
    turns: Callable[[], tuple[int, int, int, int]],
    snapshot: Callable[[], Awaitable[Snapshot]],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """`turns()` says (in flight, its limit, working, its limit) now; `snapshot()` reads the queues from the
    database."""

    async def handle_metrics(request: web.Request) -> web.StreamResponse:
        refused = _refusal(request, token)
        if refused is not None:
            return refused
        metrics.set_turns(*turns())
        try:
            metrics.set_queues(await snapshot())
        except Exception:
            log.exception("/metrics: the queue gauges could not be read from the database")
            metrics.scrape_errors.inc()
        body, content_type = metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})

    return handle_metrics
