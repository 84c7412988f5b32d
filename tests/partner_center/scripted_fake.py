"""A local HTTP server whose answers each test scripts, for the Partner Center client's protocol edges.

Each route (method + path) has a queue of replies consumed in order; `always()` sets the reply used
once the queue is empty. Every request is recorded with its headers and body, so tests can check
`MS-RequestId`, `MS-CorrelationId`, `If-Match` and what was sent. A reply can also be late (to make
the client time out) or drop the connection without answering (a lost response).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict


@dataclass(frozen=True)
class Reply:
    """One scripted answer. `body` may be a dict/list (sent as JSON), str or bytes."""

    status: int = 200
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def request_id(self) -> str | None:
        return self.headers.get("MS-RequestId")

    @property
    def correlation_id(self) -> str | None:
        return self.headers.get("MS-CorrelationId")


def fault(code: int | str, description: str = "Refused", *, data: list[Any] | None = None) -> dict[str, Any]:
    """Microsoft's error body."""
    return {"code": code, "description": description, "data": data or [], "source": "PartnerFD"}


def collection(items: list[Any], *, next_token: str | None = None, next_uri: str | None = None) -> dict[str, Any]:
    """Microsoft's collection envelope, with a `next` link carrying a continuation token if given."""
    body: dict[str, Any] = {"totalCount": len(items), "items": items, "attributes": {"objectType": "Collection"}}
    if next_token is not None:
        body["links"] = {
            "next": {
                "uri": next_uri or "/unused",
                "method": "GET",
                "headers": [{"key": "MS-ContinuationToken", "value": next_token}],
            }
        }
    return body


class ScriptedPartnerCenter:
    """Serves scripted replies; unscripted routes answer 501 so a test notices at once."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queues: dict[tuple[str, str], deque[Reply]] = defaultdict(deque)
        self._always: dict[tuple[str, str], Reply] = {}
        self.url = ""

    def script(self, method: str, path: str, *replies: Reply) -> None:
        self._queues[(method.upper(), path)].extend(replies)

    def always(self, method: str, path: str, reply: Reply) -> None:
        self._always[(method.upper(), path)] = reply

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        return [request for request in self.requests if request.method == method.upper() and request.path == path]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                raw_path=request.raw_path,
                query=dict(request.query),
                headers=CIMultiDict(request.headers),
                body=body,
            )
        )
        key = (request.method, request.path)
        queue = self._queues.get(key)
        if queue:
            reply = queue.popleft()
        elif key in self._always:
            reply = self._always[key]
        else:
            return web.json_response({"code": "unscripted", "description": f"{key}"}, status=501)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.drop:
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError  # nothing is sent: the client sees the connection drop
        if isinstance(reply.body, bytes):
            payload, content_type = reply.body, "application/octet-stream"
        elif isinstance(reply.body, str):
            payload, content_type = reply.body.encode(), "text/plain"
        elif reply.body is None:
            payload, content_type = b"", None
        else:
            payload, content_type = json.dumps(reply.body).encode(), "application/json"
        response = web.Response(status=reply.status, body=payload, headers=dict(reply.headers))
        if content_type and "Content-Type" not in reply.headers:
            response.content_type = content_type
        return response


@asynccontextmanager
async def serve(app: web.Application, *, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[str]:
    """Run `app` on a free loopback port; yields its base URL (https when given an SSL context)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context else "http"
    try:
        yield f"{scheme}://{'localhost' if ssl_context else '127.0.0.1'}:{port}"
    finally:
        await runner.cleanup()
