"""Fakes at the process edge: a Bot Framework connector that records what the bot sends."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiosmtpd.handlers import Message


@dataclass
class RecordedActivity:
    conversation_id: str
    activity: dict[str, Any]
    method: str
    reply_to_id: str | None = None
    updated_id: str | None = None


@dataclass
class FakeConnector:
    """Speaks the connector paths the SDK uses; keeps every activity per conversation."""

    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[RecordedActivity] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)
    # The bot's end of the TCP connection each request came over: (host, port).
    peers: list[tuple[str, int]] = field(default_factory=list)
    fail_next: int = 0
    # POSTs into these conversations fail (500) until the test takes them out: one member unreachable.
    fail_conversations: set[str] = field(default_factory=set)
    # While set (and not yet released), a POST is recorded at once but answered only on release: Teams
    # slow to take a reply.
    hold_answers: asyncio.Event | None = None
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _changed: asyncio.Condition | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._send)
        app.router.add_put("/v3/conversations/{conversation}/activities/{activity}", self._update)
        app.router.add_get("/v3/conversations/{conversation}/members/{member}", self._member)
        return app

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _record(self, item: RecordedActivity) -> None:
        self.received.append(item)
        async with self._condition():
            self._condition().notify_all()

    async def _send(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        self.peers.append(request.transport.get_extra_info("peername")[:2] if request.transport else ("", 0))
        if self.fail_next or request.match_info["conversation"] in self.fail_conversations:
            self.fail_next = max(0, self.fail_next - 1)
            return web.json_response({"error": {"code": "ServiceError"}}, status=500)
        body = await request.json()
        message_id = f"msg-{next(self._ids)}"
        await self._record(
            RecordedActivity(
                request.match_info["conversation"], body, "POST", reply_to_id=request.match_info.get("activity")
            )
        )
        if self.hold_answers is not None:
            await self.hold_answers.wait()
        return web.json_response({"id": message_id})

    async def _update(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization"))
        body = await request.json()
        activity_id = request.match_info["activity"]
        await self._record(RecordedActivity(request.match_info["conversation"], body, "PUT", updated_id=activity_id))
        return web.json_response({"id": activity_id})

    async def _member(self, request: web.Request) -> web.Response:
        member = self.members.get(request.match_info["member"])
        if member is None:
            return web.json_response({"error": {"code": "MemberNotFoundInConversation"}}, status=404)
        return web.json_response(member)

    def messages(self, conversation_id: str | None = None) -> list[dict[str, Any]]:
        """What a person reads as the bot's answers, in arrival order: new messages, and live screens
        that replaced a card in place. Typing indicators are left out, and so are read-only records
        that a used card was turned into (`records`)."""
        return [
            item.activity
            for item in self.received
            if item.activity.get("type") != "typing"
            and not _is_record(item)
            and (conversation_id is None or item.conversation_id == conversation_id)
        ]

    def records(self, conversation_id: str | None = None) -> list[RecordedActivity]:
        """Cards updated in place into read-only records (no button left), with the id they replaced."""
        return [
            item
            for item in self.received
            if _is_record(item) and (conversation_id is None or item.conversation_id == conversation_id)
        ]

    def by_conversation(self) -> dict[str, list[dict[str, Any]]]:
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for item in self.received:
            if item.activity.get("type") != "typing" and not _is_record(item):
                grouped[item.conversation_id].append(item.activity)
        return grouped

    async def wait_for(self, count: int, conversation_id: str | None = None) -> None:
        """Until `count` messages arrived; bounded so a missing reply fails the test instead of hanging."""
        async with asyncio.timeout(10), self._condition():
            await self._condition().wait_for(lambda: len(self.messages(conversation_id)) >= count)


def _is_record(item: RecordedActivity) -> bool:
    """An update that left a card with nothing to click: a used card's record, not a new screen."""
    if item.method != "PUT":
        return False
    card = card_of(item.activity)
    return card is not None and not _has_actions(card)


def _has_actions(node: Any) -> bool:
    if isinstance(node, dict):
        if str(node.get("type", "")).startswith("Action."):
            return True
        return any(_has_actions(value) for value in node.values())
    if isinstance(node, list):
        return any(_has_actions(item) for item in node)
    return False


def card_of(activity: dict[str, Any]) -> dict[str, Any] | None:
    for attachment in activity.get("attachments") or []:
        if attachment.get("contentType") == "application/vnd.microsoft.card.adaptive":
            return attachment["content"]
    return None


def card_text(card: dict[str, Any]) -> str:
    """All visible text of a card, for assertions on what it says."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("text", "title", "value", "label", "placeholder"):
                if isinstance(node.get(key), str):
                    parts.append(node[key])
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    return "\n".join(parts)


def said(reply: dict[str, Any]) -> str:
    """What a reply says: its card's visible text, or its plain text."""
    card = card_of(reply)
    return card_text(card) if card else str(reply.get("text") or "")


def free_port() -> int:
    """A loopback port that is free right now (for a server a test starts)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SmtpInbox(Message):
    """An aiosmtpd handler keeping every message a test SMTP server received (`email.message.Message`)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Any] = []

    def handle_message(self, message: Any) -> None:
        self.messages.append(message)
