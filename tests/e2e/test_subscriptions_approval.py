"""End to end through the Agents Playground: the admin (`user-id-0`) asks to suspend a subscription,
the approval card is posted in the organisation's approvals channel (the Playground's group chat),
the approver (`user-id-1`) approves through `/_conversation/v1/invoke`, the subscription is suspended
in the sandbox and the card shows the decision.

Not run by helpers (the Playground uses fixed ports); the lead runs it with the e2e marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from services.container import Services
from services.models import ConversationReferenceRow
from tests.cardcheck import assert_valid_card
from tests.conftest import link_demo_customer
from tests.e2e.playground import Playground, SharedPlayground, bot_in_playground
from tests.fakes import card_text
from tests.subscription_fixtures import buy

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

APPROVER_ID = "user-id-1"


@pytest_asyncio.fixture(loop_scope="session")
async def running(session_playground: SharedPlayground, tmp_path: Any) -> AsyncIterator[tuple[Playground, Services]]:
    async with bot_in_playground(session_playground, tmp_path) as (pg, services, _):
        yield pg, services


def _card(message: dict[str, Any]) -> dict[str, Any]:
    cards = [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]
    assert cards, f"expected a card, got {message}"
    assert_valid_card(cards[0])
    return cards[0]


async def _message_with(pg: Playground, words: str, timeout: float = 30) -> dict[str, Any]:  # noqa: ASYNC109
    for _ in range(10):
        message = await pg.next_bot_message(timeout=timeout)
        cards = [a["content"] for a in message.get("attachments") or [] if "adaptive" in a.get("contentType", "")]
        said = card_text(cards[0]) if cards else str(message.get("text", ""))
        if words in said:
            return message
    raise AssertionError(f"no bot message saying {words!r}")


async def test_admin_asks_approver_approves_and_the_subscription_is_suspended(running):
    pg, services = running
    org = await link_demo_customer(services)
    sid = await buy(services, org, quantity=5)
    # The bot learns the group chat (a mention), which the operator makes the approvals channel.
    group = pg.group_chat_id
    await pg.send_text(group, "menu", mention_bot=True)
    await _message_with(pg, "What would you like to do?")
    async with services.sessions() as session:
        stored = await session.scalar(
            select(ConversationReferenceRow.conversation_id).where(
                ConversationReferenceRow.conversation_id.startswith(group)
            )
        )
    assert stored, "the bot did not remember the group chat"
    await services.approvals.set_channel("contoso", stored, actor="e2e")

    chat = pg.personal_conversation_id
    await pg.send_text(chat, "subscriptions")
    listing = await _message_with(pg, "Your subscriptions")
    await pg.submit(chat, listing["messageId"], {"verb": "subs_suspend", "subscription_id": sid})
    form = await _message_with(pg, "Why?")
    await pg.submit(chat, form["messageId"], {"verb": "subs_suspend_send", "subscription_id": sid, "reason": "Paused"})
    posted = await _message_with(pg, "Suspension request")
    assert posted["actionConversationId"].startswith(group)
    card = _card(posted)
    assert APPROVER_ID in card["refresh"]["userIds"]
    approval_id = card["refresh"]["action"]["data"]["approval_id"]

    answer = await pg.invoke(
        group,
        {"action": {"type": "Action.Execute", "verb": "approval_approve", "data": {"approval_id": approval_id}}},
        reply_to_id=posted["messageId"],
        from_id=APPROVER_ID,
    )
    assert "Approved by Megan Bowen" in card_text(answer["value"])

    for _ in range(40):
        frame = await pg.next_frame(timeout=30)
        if frame.get("action") == "updateMessage" and "— suspended" in str(frame):
            break
    else:
        raise AssertionError("the approval card was not updated with the decision")
    customer = org.partner_center_customer_id
    assert customer
    assert str((await services.partner_center.subscription(customer, sid)).status) == "suspended"
