"""End to end: the real bot served over HTTP, driven through the Microsoft 365 Agents Playground
(the local Teams stand-in) exactly as a person chatting in its browser UI would."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.cardcheck import assert_valid_card
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.fakes import card_text

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def playground(session_playground: SharedPlayground, tmp_path: Any) -> AsyncIterator[Playground]:
    """The bot on the embedded default (its own SQLite file, demo organisation) and the Playground."""
    async with bot_in_playground(session_playground, tmp_path) as (pg, _, _):
        yield pg


def _card(message: dict[str, Any]) -> dict[str, Any]:
    cards = [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]
    assert cards, f"expected a card, got {message}"
    assert_valid_card(cards[0])
    return cards[0]


async def test_help_then_menu_in_the_personal_chat(playground: Playground):
    chat = playground.personal_conversation_id
    await playground.send_text(chat, "help")
    assert "How to use this bot" in card_text(_card(await playground.next_bot_message(timeout=20)))
    await playground.send_text(chat, "menu")
    menu = card_text(_card(await playground.next_bot_message(timeout=20)))
    assert "What would you like to do?" in menu and "Contoso Ltd" in menu and "Alex Wilber" in menu


async def test_installing_the_app_greets_the_playground_user(playground: Playground):
    await playground.install(playground.personal_conversation_id)
    welcome = card_text(_card(await playground.next_bot_message(timeout=20)))
    assert "Welcome, Alex Wilber" in welcome


async def test_menu_button_and_channel_mention(playground: Playground):
    chat = playground.personal_conversation_id
    await playground.send_text(chat, "menu")
    menu = await playground.next_bot_message(timeout=20)
    await playground.submit(chat, menu["messageId"], {"verb": "command", "command": "help"})
    assert "How to use this bot" in card_text(_card(await playground.next_bot_message(timeout=20)))
    await playground.send_text("team-id", "menu", mention_bot=True)
    reply = await playground.next_bot_message(timeout=20)
    assert reply["actionConversationId"].startswith("team-id")
    assert "What would you like to do?" in card_text(_card(reply))
