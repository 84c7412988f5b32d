"""Approvals on SQLite and PostgreSQL: who may ask and decide, self-approval policy, one decision
under concurrency, expiry, the approvals channel setting."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from services.container import Services
from services.db import utcnow
from services.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from services.models import AuditEntry
from services.organisations import OrganisationView
from services.subscriptions import ApprovalService
from tests.conftest import Sandbox, demo_customer_then
from tests.subscription_fixtures import admin, approver, buy, caller, prepare_catalog_and_prices

PATTI = ("pattif@example.com", "Patti Fernandez", "user-id-2", "00000000-0000-0000-0000-0000000000022")


@pytest.fixture
@demo_customer_then(prepare_catalog_and_prices)
async def subscription(services: Services, demo_customer: OrganisationView, sandbox: Sandbox) -> str:  # noqa: ARG001 - a fixture this one needs for its effect
    sid = await buy(services, demo_customer, quantity=3)
    await services.subscriptions.sync(demo_customer.id)
    return sid


async def test_asking_needs_an_admin_a_reason_and_gives_one_open_request(services, subscription):
    with pytest.raises(PermissionDenied):
        await services.approvals.request_suspension(await approver(services), subscription, "why")
    with pytest.raises(InvalidInput) as empty:
        await services.approvals.request_suspension(await admin(services), subscription, "   ")
    assert empty.value.field == "reason"
    with pytest.raises(NotFound):
        await services.approvals.request_suspension(await admin(services), "someone-elses", "why")
    first, created = await services.approvals.request_suspension(await admin(services), subscription, "Project paused")
    again, created_again = await services.approvals.request_suspension(await admin(services), subscription, "again")
    assert created and not created_again and again.id == first.id and first.status == "pending"


async def test_self_approval_only_when_the_organisation_allows_it(services, subscription):
    await services.organisations.set_roles("contoso", "alexw@example.com", add=["approver"], remove=[], actor="t")
    alex = await admin(services)
    approval, _ = await services.approvals.request_suspension(alex, subscription, "Paused")
    with pytest.raises(PermissionDenied, match="another approver"):
        await services.approvals.decide(alex, approval.id, approve=False)
    await services.organisations.update("contoso", {"allow_self_approval": True}, actor="t")
    decision = await services.approvals.decide(alex, approval.id, approve=False)
    assert decision.decided_now and decision.approval.status == "rejected"


async def test_two_simultaneous_decisions_make_exactly_one(services, subscription):
    await services.organisations.add_member(
        "contoso",
        PATTI[0],
        ["approver"],
        actor="t",
        display_name=PATTI[1],
        channel_user_id=PATTI[2],
        aad_object_id=PATTI[3],
    )
    approval, _ = await services.approvals.request_suspension(await admin(services), subscription, "Paused")
    megan, patti = await approver(services), await caller(services, PATTI)
    results = await asyncio.gather(
        services.approvals.decide(megan, approval.id, approve=True),
        services.approvals.decide(patti, approval.id, approve=False),
    )
    assert sum(result.decided_now for result in results) == 1
    final = await services.approvals.load(approval.id)
    loser = next(result for result in results if not result.decided_now)
    assert loser.approval.status == final.status and final.decider_name in loser.message


async def test_requests_expire_after_the_configured_time(services, subscription):
    now = [utcnow()]
    approvals = ApprovalService(
        services.sessions, services.subscription_changes, expiry=timedelta(hours=2), clock=lambda: now[0]
    )
    approval, _ = await approvals.request_suspension(await admin(services), subscription, "Paused")
    assert approval.expires_at - approval.created_at == timedelta(hours=2)
    now[0] = now[0] + timedelta(hours=2, seconds=1)
    decision = await approvals.decide(await approver(services), approval.id, approve=True)
    assert not decision.decided_now and decision.approval.status == "expired" and "expired" in decision.message
    _, created = await approvals.request_suspension(await admin(services), subscription, "Paused again")
    assert created  # an expired request does not block a new one


async def test_expiry_is_noticed_once_whoever_looks_first(services, subscription):
    """The scheduled check, a sweep, a refresh and a click may all find a request due: exactly one
    of them moves it to expired (and so tells the requester); it is audited."""
    now = [utcnow()]
    approvals = ApprovalService(
        services.sessions, services.subscription_changes, expiry=timedelta(hours=2), clock=lambda: now[0]
    )
    approval, _ = await approvals.request_suspension(await admin(services), subscription, "Paused")
    assert await approvals.expire_due() == []  # not due yet
    assert (await approvals.expire(approval.id))[1] is False
    now[0] = now[0] + timedelta(hours=2)
    results = await asyncio.gather(
        approvals.expire(approval.id),
        approvals.expire(approval.id),
        approvals.look(await admin(services), approval.id),
        approvals.decide(await approver(services), approval.id, approve=True),
    )
    moved = [results[0][1], results[1][1], results[2][1], results[3].expired_now]
    assert moved.count(True) == 1
    assert not results[3].decided_now and (await approvals.load(approval.id)).status == "expired"
    assert await approvals.expire_due() == []
    async with services.sessions() as session:
        audited = await session.scalar(
            select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "approval.expire")
        )
    assert audited == 1


async def test_the_sweep_expires_every_overdue_request(services, subscription):
    now = [utcnow()]
    approvals = ApprovalService(
        services.sessions, services.subscription_changes, expiry=timedelta(hours=1), clock=lambda: now[0]
    )
    approval, _ = await approvals.request_suspension(await admin(services), subscription, "Paused")
    now[0] = now[0] + timedelta(hours=1, minutes=1)
    assert [a.id for a in await approvals.expire_due()] == [approval.id]
    assert (await approvals.load(approval.id)).status == "expired"


@pytest.mark.usefixtures("subscription")
async def test_the_approvals_channel_must_be_a_conversation_of_the_organisation(services):
    with pytest.raises(NotFound):
        await services.approvals.set_channel("contoso", "19:nope@thread.tacv2", actor="op")
    org = await services.organisations.get("contoso")
    other = await services.organisations.create("fabrikam", {"name": "Fabrikam"}, actor="op")
    await services.conversations.save(
        "19:ours@thread.tacv2", {"x": 1}, conversation_type="channel", organisation_id=org.id, member_id=None
    )
    await services.conversations.save(
        "19:theirs@thread.tacv2", {"x": 1}, conversation_type="channel", organisation_id=other.id, member_id=None
    )
    with pytest.raises(Conflict):
        await services.approvals.set_channel("contoso", "19:theirs@thread.tacv2", actor="op")
    await services.approvals.set_channel("contoso", "19:ours@thread.tacv2", actor="op")
    assert await services.approvals.channel_of(org.id) == "19:ours@thread.tacv2"
    await services.approvals.set_channel("contoso", None, actor="op")
    assert await services.approvals.channel_of(org.id) is None


async def test_only_an_admin_withdraws_and_only_while_no_one_has_decided(services, subscription):
    approval, _ = await services.approvals.request_suspension(await admin(services), subscription, "Paused")
    with pytest.raises(PermissionDenied):
        await services.approvals.withdraw(await approver(services), approval.id)
    with pytest.raises(NotFound):
        await services.approvals.withdraw(await admin(services), approval.id + 1000)
    assert (await services.approvals.open_requests(approval.organisation_id))[subscription].id == approval.id
    withdrawn = await services.approvals.withdraw(await admin(services), approval.id)
    assert withdrawn.decided_now and withdrawn.approval.status == "withdrawn"
    assert withdrawn.approval.decider_name == "Alex Wilber"
    again = await services.approvals.withdraw(await admin(services), approval.id)
    assert not again.decided_now and "Withdrawn by Alex Wilber" in again.message
    decided = await services.approvals.decide(await approver(services), approval.id, approve=True)
    assert not decided.decided_now and decided.approval.status == "withdrawn"
    assert await services.approvals.open_requests(approval.organisation_id) == {}
    # A decided request cannot be withdrawn any more.
    second, _ = await services.approvals.request_suspension(await admin(services), subscription, "Paused again")
    await services.approvals.decide(await approver(services), second.id, approve=False)
    late = await services.approvals.withdraw(await admin(services), second.id)
    assert not late.decided_now and late.approval.status == "rejected"


async def test_waiting_requests_are_those_not_yet_posted_to_that_approvers_chat(services, subscription):
    approval, _ = await services.approvals.request_suspension(await admin(services), subscription, "Paused")
    megan = next(a for a in await services.approvals.approvers(approval.organisation_id) if a.name == "Megan Bowen")
    assert [w.id for w in await services.approvals.waiting_for(megan, approval.organisation_id, "chat-m")] == [
        approval.id
    ]
    await services.approvals.add_post(approval.id, "chat-m", "activity-1", approver=True)
    assert await services.approvals.waiting_for(megan, approval.organisation_id, "chat-m") == []
