"""End to end: "add tenant" through the Agents Playground on the embedded default (its own sandbox),
from the prefilled form to the follow-up card, and the credentials e-mail in the outbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from tests.cardcheck import assert_valid_card
from tests.conftest import outbox_messages
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.fakes import card_text
from tests.mailparts import plain_text

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def bot_and_playground(
    session_playground: SharedPlayground, tmp_path: Path
) -> AsyncIterator[tuple[Playground, Path]]:
    async with bot_in_playground(session_playground, tmp_path) as (pg, _, outbox):
        yield pg, outbox


def _card(message: dict[str, Any]) -> dict[str, Any] | None:
    cards = [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]
    if cards:
        assert_valid_card(cards[0])
    return cards[0] if cards else None


def _values(card: dict[str, Any]) -> dict[str, str]:
    return {e["id"]: str(e.get("value", "")) for e in card["body"] if str(e.get("type", "")).startswith("Input.")}


def _data(card: dict[str, Any], title: str) -> dict[str, Any]:
    return dict(next(a for a in card["actions"] if a["title"] == title)["data"])


async def test_create_a_tenant_and_find_the_credentials_mail(bot_and_playground) -> None:
    playground, outbox = bot_and_playground
    chat = playground.personal_conversation_id
    await playground.send_text(chat, "add tenant")
    start = await playground.next_bot_message(timeout=20)
    start_card = _card(start)
    assert start_card is not None and "Create a new tenant" in card_text(start_card)

    await playground.submit(chat, start["messageId"], _data(start_card, "Create a new tenant"))
    form = await playground.next_bot_message(timeout=20)
    form_card = _card(form)
    assert form_card is not None and _values(form_card)["company_name"] == "Contoso Ltd"

    prefix = f"e2e{uuid.uuid4().hex[:10]}"
    await playground.submit(
        chat,
        form["messageId"],
        {**_values(form_card), **_data(form_card, "Check and continue"), "domain_prefix": prefix},
    )
    confirm = await playground.next_bot_message(timeout=20)
    confirm_card = _card(confirm)
    assert confirm_card is not None and "No charges arise at this step" in card_text(confirm_card)

    await playground.submit(
        chat,
        confirm["messageId"],
        {**_values(confirm_card), **_data(confirm_card, "Create the tenant"), "mca_accept": "true"},
    )
    replies = [await playground.next_bot_message(timeout=30) for _ in range(2)]
    texts = [card_text(card) if (card := _card(reply)) else reply.get("text", "") for reply in replies]
    assert any("Working on it" in said for said in texts)
    assert any("Your Microsoft 365 tenant is ready" in said for said in texts)

    [mail] = outbox_messages(outbox)
    assert mail["To"] == "alexw@example.com"
    password = plain_text(mail).split("password:", 1)[1].split()[0]
    assert all(password not in said for said in texts)
