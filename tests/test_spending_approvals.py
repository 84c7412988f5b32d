"""Spending that needs an approver: the operator's policy (threshold, commitments, yearly limit), a
purchase and more seats above it asked of an approver on the approval card — from the one-line
commands and the full tasks alike — approve runs the change exactly once, reject tells the requester,
and a request keeps the policy it was asked under."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from services.models import Approval, Job
from services.spending import Spend
from tests.cardcheck import assert_valid_card
from tests.commands_world import Typist, World, build_world, click, last_card
from tests.conftest import message, runtime_of
from tests.fakes import card_of, card_text, said

MEGAN = {
    "user_id": "user-id-1",
    "name": "Megan Bowen",
    "aad_object_id": "00000000-0000-0000-0000-0000000000021",
    "conversation_id": "personal-chat-megan",
}


def _spend(monthly: str, term: str = "P1M") -> Spend:
    return Spend("Buy something", "USD", Decimal(monthly), term)


async def test_the_policy_says_why_a_change_needs_an_approver(sqlite_services, sqlite_demo_customer) -> None:
    world = await build_world(sqlite_services, sqlite_demo_customer)
    policies, org = sqlite_services.spending, world.org
    assert (await policies.reasons(org.id, _spend("5000", "P3Y")))[0] == []  # no policy: nothing needs one
    await policies.set("contoso", actor="op", monthly_threshold="100")
    assert (await policies.reasons(org.id, _spend("100")))[0] == []  # at the threshold: fine
    [over], _ = await policies.reasons(org.id, _spend("100.01"))
    assert "adds $100.01 a month, over the $100.00 threshold" in over
    assert (await policies.reasons(org.id, _spend("10", "P1Y")))[0] == []
    await policies.set("contoso", actor="op", commitments_need_approval=True)
    [commits], _ = await policies.reasons(org.id, _spend("10", "P1Y"))
    assert "commits to 1 year" in commits
    run_rate = await policies.annual_run_rate(org.id)
    assert run_rate > 0
    await policies.set("contoso", actor="op", commitments_need_approval=False, annual_limit=str(run_rate + 120))
    assert (await policies.reasons(org.id, _spend("10")))[0] == []  # 120 more a year: at the limit
    [limit], _ = await policies.reasons(org.id, _spend("10.01"))
    assert "over the" in limit and "limit" in limit
    with pytest.raises(Exception, match="not an amount"):
        await policies.set("contoso", actor="op", monthly_threshold="lots")


async def _approvals(world: World) -> list[Approval]:
    async with world.services.sessions() as session:
        return list(await session.scalars(select(Approval).order_by(Approval.id)))


async def _orders(world: World) -> int:
    async with world.services.sessions() as session:
        return int(
            await session.scalar(select(func.count()).select_from(Job).where(Job.kind == "order_subscription")) or 0
        )


async def _invoke(client: Any, url: str, verb: str, approval_id: int, **who: Any) -> dict[str, Any]:
    activity = message(None, service_url=url, **who)
    activity.update(type="invoke", name="adaptiveCard/action")
    activity["value"] = {"action": {"type": "Action.Execute", "verb": verb, "data": {"approval_id": approval_id}}}
    response = await client.post("/api/messages", json=activity)
    assert response.status == 200
    return await response.json()


async def _eventually(check: Any) -> None:
    """Until `check()` holds (the approval's job runs in the app's background); bounded."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the expected outcome did not arrive")


@pytest.fixture
async def bot(make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox):
    world = await build_world(sqlite_services, sqlite_demo_customer)
    await sqlite_services.spending.set("contoso", actor="op", monthly_threshold="100")
    fake, url = connector
    client = await make_bot()
    runtime_of(client).services.subscriptions.use_clock(sandbox.clock.now)
    megan = Typist(client, fake, url, **MEGAN)
    await megan.say("hi")  # the approver's 1:1 chat, where approval cards reach her
    return world, client, fake, url, Typist(client, fake, url)


async def test_a_purchase_above_the_threshold_is_ordered_once_when_an_approver_approves(bot) -> None:
    world, client, fake, url, alex = bot
    below = last_card(await alex.say("buy 2 Visio Plan 1 monthly"))  # $11.04 a month: no approver
    await alex.say(value=click(below, "Create subscription"))
    assert await _orders(world) == 1 and await _approvals(world) == []
    card = last_card(await alex.say("buy 10 Visio Plan 2 monthly"))  # $165.60 a month
    asked = await alex.say(value=click(card, "Create subscription"))
    assert "needs an approver" in said(asked[-1]) and "over the $100.00 threshold" in said(asked[-1])
    [approval] = await _approvals(world)
    assert (approval.kind, approval.status) == ("purchase", "pending") and await _orders(world) == 1
    [posted] = [m for m in fake.messages("personal-chat-megan") if "Spending request" in said(m)]
    assert_valid_card(card_of(posted))
    text = card_text(card_of(posted))
    assert "Buy 10 × Visio Plan 2" in text and "$165.60 per month" in text and "Alex Wilber" in text
    assert "Policy when it was asked: A change adding more than $100.00 a month needs an approver." in text
    await world.services.spending.set("contoso", actor="op", monthly_threshold="1000")  # changed meanwhile
    decided = await _invoke(client, url, "approval_approve", approval.id, **MEGAN)
    assert_valid_card(decided["value"])
    assert "Approved by Megan Bowen" in card_text(decided["value"])
    assert "more than $100.00 a month" in card_text(decided["value"])  # the policy it was asked under

    async def done() -> bool:
        return (await world.services.approvals.load(approval.id)).status == "done"

    await _eventually(done)
    again = await _invoke(client, url, "approval_approve", approval.id, **MEGAN)
    assert "Already approved by Megan Bowen" in card_text(again["value"])
    assert await _orders(world) == 2  # this one, once

    async def told() -> bool:
        return any(
            "approved your request (Buy 10 × Visio Plan 2)" in said(m) for m in fake.messages("personal-chat-alex")
        )

    await _eventually(told)


async def test_more_seats_above_the_threshold_are_added_on_approval_and_rejected_ones_are_not(bot) -> None:
    world, client, fake, url, alex = bot
    shown = await alex.say("add 10 seats to Business Standard")  # $115.00 more a month
    assert "This needs an approver under your organisation's spending policy" in said(shown[0])
    card = last_card(shown)
    asked = await alex.say(value=click(card, "Add 10 seats"))
    assert "needs an approver" in said(asked[-1])
    customer = world.org.partner_center_customer_id
    assert customer
    quantity = (await world.services.partner_center.subscription(customer, world.subscriptions["standard"])).quantity
    assert quantity == 10  # nothing before the approval
    [approval] = await _approvals(world)
    assert approval.kind == "seats"
    await _invoke(client, url, "approval_approve", approval.id, **MEGAN)

    async def added() -> bool:
        current = await world.services.partner_center.subscription(customer, world.subscriptions["standard"])
        return current.quantity == 20 and (await world.services.approvals.load(approval.id)).status == "done"

    await _eventually(added)
    # Through the full task (subscriptions → Change quantity → Show the cost → Add): the same policy.
    e3_id = world.subscriptions["o365e3"]
    await alex.say("subscriptions")
    await alex.say(value={"verb": "subs_quantity", "subscription_id": e3_id})
    preview = last_card(
        await alex.say(value={"verb": "subs_quantity_preview", "subscription_id": e3_id, "quantity": "15"})
    )
    asked = await alex.say(value=click(preview, "Add 10 seats"))  # $211.60 more a month
    assert "needs an approver" in "".join(said(m) for m in asked)
    second = (await _approvals(world))[-1]
    rejected = await _invoke(client, url, "approval_reject", second.id, **MEGAN)
    assert "Rejected by Megan Bowen" in card_text(rejected["value"])
    e3 = await world.services.partner_center.subscription(customer, world.subscriptions["o365e3"])
    assert e3.quantity == 5

    async def told() -> bool:
        return any(
            "rejected your request (Add 10 seats to Office 365 E3)" in said(m)
            for m in fake.messages("personal-chat-alex")
        )

    await _eventually(told)


async def test_below_the_threshold_nothing_changes_for_the_admin(bot) -> None:
    world, client, fake, url, alex = bot
    card = last_card(await alex.say("add 1 seat to Business Standard"))  # $11.50 more a month
    done = await alex.say(value=click(card, "Add 1 seat"))
    assert "now has 11 seats" in said(done[-1]) and await _approvals(world) == []


async def test_an_addon_above_the_policy_is_ordered_on_approval(bot) -> None:
    world, client, fake, url, alex = bot
    await world.services.spending.set("contoso", actor="op", monthly_threshold="1")
    base = world.subscriptions["basic_year"]
    await alex.say("subscriptions")
    addons = last_card(await alex.say(value={"verb": "subs_addons", "subscription_id": base}))
    asked = await alex.say(value=click(addons, "Order the add-on", addon="CFQ7TTC0LH0J:0001", quantity="2"))
    assert "needs an approver" in "".join(said(m) for m in asked)
    approval = (await _approvals(world))[-1]
    assert approval.kind == "addon" and approval.status == "pending"
    customer = world.org.partner_center_customer_id
    assert customer

    async def children() -> list[Any]:
        subs = await world.services.partner_center.subscriptions(customer)
        return [s for s in subs if (s.parent_subscription_id or "").lower() == base]

    assert await children() == []
    await _invoke(client, url, "approval_approve", approval.id, **MEGAN)

    async def ordered() -> bool:
        return len(await children()) == 1 and (await world.services.approvals.load(approval.id)).status == "done"

    await _eventually(ordered)
    [addon] = await children()
    assert addon.quantity == 2
