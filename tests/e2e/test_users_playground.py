"""End to end through the Agents Playground: an admin creates a user and assigns a licence, with
the bot on the embedded default (its own sandbox), the demo organisation linked to a sandbox
customer that bought licences (written into the subscriptions mirror here, as ordering would)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from email import message_from_bytes
from email import policy as email_policy
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from cards import users as ui
from services.container import Services
from tests.conftest import link_demo_customer
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.e2e.test_playground import _card
from tests.fakes import card_text
from tests.users_support import BASIC, buy_licences

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest_asyncio.fixture(loop_scope="session")
async def linked(
    session_playground: SharedPlayground, tmp_path: Any
) -> AsyncIterator[tuple[Playground, Services, Path]]:
    async with bot_in_playground(session_playground, tmp_path) as (pg, services, outbox):
        org = await link_demo_customer(services)
        await buy_licences(services, org, BASIC, 2)
        yield pg, services, outbox


def _submit_data(card: dict[str, Any], verb: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Action.Submit" and node.get("data", {}).get("verb") == verb:
                found.append(node["data"])
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    assert found, f"no {verb} on the card"
    return dict(found[0])


def _input(card: dict[str, Any], input_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("id") == input_id and str(node.get("type", "")).startswith("Input."):
                found.append(node)
            for item in node.values():
                walk(item)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    assert found, f"no input {input_id}"
    return found[0]


async def _next_card(pg: Playground) -> tuple[dict[str, Any], dict[str, Any]]:
    message = await pg.next_bot_message(timeout=30)
    return message, _card(message)


async def test_create_a_user_and_assign_a_licence(linked: tuple[Playground, Services, Path]) -> None:
    pg, services, outbox = linked
    chat = pg.personal_conversation_id

    await pg.send_text(chat, "new user")
    message, form = await _next_card(pg)
    domain = _submit_data(form, ui.USERS_CREATE)["domain"]  # the tenant's one domain, beside the user name
    await pg.submit(
        chat,
        message["messageId"],
        {
            **_submit_data(form, ui.USERS_CREATE),
            "first_name": "Kim",
            "last_name": "Lee",
            "display_name": "Kim Lee",
            "user_name": "kim.lee",
            "domain": domain,
            "usage_location": "US",
            "password_email": "kim@example.com",
        },
    )
    message, created = await _next_card(pg)
    assert f"kim.lee@{domain}" in card_text(created) and "e-mailed to kim@example.com" in card_text(created)
    mails = [message_from_bytes(path.read_bytes(), policy=email_policy.default) for path in outbox.glob("*.eml")]
    assert [mail["To"] for mail in mails] == ["kim@example.com"]

    await pg.submit(chat, message["messageId"], _submit_data(created, ui.USERS_ASSIGN))
    message, assign = await _next_card(pg)
    assert "2 available of 2 (0 assigned)" in card_text(assign)
    kim = next(c["value"] for c in _input(assign, "user_ids")["choices"] if "kim.lee@" in c["title"])
    await pg.submit(
        chat,
        message["messageId"],
        {
            **_submit_data(assign, ui.USERS_ASSIGN_DO),
            "user_ids": kim,
            "licence": _input(assign, "licence")["value"],
        },
    )
    _, outcome = await _next_card(pg)
    text = card_text(outcome)
    assert "✔ Kim Lee: assigned" in text and "Available\n1\nAssigned\n1\nTotal\n2" in text
