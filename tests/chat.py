"""One person's 1:1 chat with the bot through the real HTTP endpoint and the fake connector: every
reply's cards are checked against the Adaptive Card schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from tests.cardcheck import assert_valid_activity_cards
from tests.conftest import message
from tests.fakes import FakeConnector, card_of, card_text


class Chat:
    """One person's 1:1 chat with the bot, over HTTP."""

    def __init__(self, client: Any, fake: FakeConnector, url: str, **identity: Any) -> None:
        self.client, self.fake, self.url, self.identity = client, fake, url, identity
        self.seen = 0

    async def send(self, text: str | None = None, value: dict[str, Any] | None = None, replies: int = 1) -> list[dict]:
        body = message(text, service_url=self.url, value=value, **self.identity)
        response = await self.client.post("/api/messages", json=body)
        assert response.status == 202
        return await self.wait(replies)

    async def wait(self, replies: int = 1) -> list[dict]:
        await self.fake.wait_for(self.seen + replies)
        new = self.fake.messages()[self.seen : self.seen + replies]
        self.seen += replies
        for reply in new:
            assert_valid_activity_cards(reply)
        return new

    async def card(self, text: str | None = None, value: dict[str, Any] | None = None) -> dict[str, Any]:
        [reply] = await self.send(text, value)
        card = card_of(reply)
        assert card is not None, reply.get("text")
        return card


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every object in a card, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def button(card: dict[str, Any], title: str) -> dict[str, Any]:
    """The submit data of the button called `title`, anywhere on the card."""
    found = [n["data"] for n in walk(card) if n.get("type") == "Action.Submit" and n.get("title") == title]
    assert found, f"no button {title!r} on: {card_text(card)}"
    return dict(found[0])


def inputs(card: dict[str, Any]) -> dict[str, str]:
    """What a person submits unchanged: every input's current value."""
    return {n["id"]: str(n.get("value", "")) for n in walk(card) if str(n.get("type", "")).startswith("Input.")}
