"""The subscriptions task and the approval card over the real HTTP endpoint, with the sandbox and
its clock: list, quantity (bad input kept on the card, preview, confirm, after the seat window),
suspend with an approver through `adaptiveCard/action` invokes (status codes and refreshed card
bodies, one decision for two approvers, self-approval refused, expiry, failed -> retry)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from services.db import utcnow
from services.models import Approval, Job
from services.partner_center.models import SubscriptionStatus
from services.subscriptions.common import as_utc
from tests.cardcheck import assert_valid_card
from tests.conftest import message, runtime_of
from tests.fakes import card_of, card_text
from tests.fakes import said as _said
from tests.subscription_fixtures import buy, prepare_catalog_and_prices

MEGAN = {
    "user_id": "user-id-1",
    "name": "Megan Bowen",
    "aad_object_id": "00000000-0000-0000-0000-0000000000021",
    "conversation_id": "personal-chat-megan",
}


async def _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox, *, quantity: int = 10, term: str = "P1Y"):
    await prepare_catalog_and_prices(sqlite_services)
    sid = await buy(sqlite_services, sqlite_demo_customer, quantity=quantity, term=term)
    client = await make_bot()
    services = runtime_of(client).services
    services.subscriptions.use_clock(sandbox.clock.now)
    return client, services, sid


async def _send(client, _fake, url, text=None, value=None, **who) -> None:
    response = await client.post("/api/messages", json=message(text, service_url=url, value=value, **who))
    assert response.status == 202


async def _reply(client, fake, url, text=None, value=None, **who) -> dict[str, Any]:
    conversation = who.get("conversation_id", "personal-chat-alex")
    before = len(fake.messages(conversation))
    await _send(client, fake, url, text, value, **who)
    await fake.wait_for(before + 1, conversation)
    reply = fake.messages(conversation)[-1]
    card = card_of(reply)
    if card is not None:
        assert_valid_card(card)
    return reply


def _action(card: dict[str, Any], title_start: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("Action.Submit", "Action.Execute") and str(node.get("title", "")).startswith(
                title_start
            ):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(card)
    assert found, f"no action {title_start!r} in {card_text(card)}"
    return found[0]


async def _invoke(client, url, verb: str, data: dict[str, Any], **who) -> tuple[int, dict[str, Any]]:
    activity = message(None, service_url=url, **who)
    activity.update(type="invoke", name="adaptiveCard/action")
    activity["value"] = {"action": {"type": "Action.Execute", "verb": verb, "data": data}, "trigger": "manual"}
    response = await client.post("/api/messages", json=activity)
    return response.status, await response.json()


async def test_list_and_change_quantity_with_preview_and_bad_input(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    listing = await _reply(client, fake, url, "subscriptions")
    said = _said(listing)
    assert "Microsoft 365 Business Basic" in said and "10 seats" in said and "$6.00 per licence per month" in said
    assert "0 assigned" in said
    card = await _reply(client, fake, url, value=_action(card_of(listing), "Change quantity")["data"])
    assert "New number of seats" in _said(card)
    bad = await _reply(client, fake, url, value={**_action(card_of(card), "Show the cost")["data"], "quantity": "ten"})
    assert "whole number" in _said(bad)
    assert any(b.get("value") == "ten" for b in card_of(bad)["body"] if b.get("type") == "Input.Text")
    preview = await _reply(
        client, fake, url, value={**_action(card_of(bad), "Show the cost")["data"], "quantity": "12"}
    )
    assert "Charged now (pro rata)" in _said(preview) and "New cost per month" in _said(preview)
    assert "New cost per month\n$72.00" in _said(preview)
    confirm = _action(card_of(preview), "Add 2 seats")["data"]
    done = await _reply(client, fake, url, value=confirm)
    assert "now has 12 seats" in _said(done)
    again = await _reply(client, fake, url, value=confirm)  # a double click: one change
    customer = sqlite_demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).quantity == 12
    assert len(await services.ledger.entries(sqlite_demo_customer.id, subscription_id=sid)) == 2
    del again


async def test_after_the_window_a_lower_quantity_is_scheduled_for_the_renewal(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox, term="P1M")
    sandbox.clock.advance(timedelta(days=8))
    await _reply(client, fake, url, "subscriptions")
    preview = await _reply(
        client, fake, url, value={"verb": "subs_quantity_preview", "subscription_id": sid, "quantity": "4"}
    )
    assert "past their 7-day window" in _said(preview)
    done = await _reply(client, fake, url, value=_action(card_of(preview), "Schedule 4 seats")["data"])
    assert "will renew with 4 seats" in _said(done)
    await sandbox.admin("POST", "/clock", {"advance": "P1M"})
    listing = await _reply(client, fake, url, value={"verb": "subs_refresh", "page": 0})
    assert "4 seats" in _said(listing)


async def test_forged_subscription_id_from_a_card_is_refused(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    await _reply(client, fake, url, "subscriptions")
    reply = await _reply(client, fake, url, value={"verb": "subs_cancel", "subscription_id": "not-ours"})
    assert "not one of your organisation's" in _said(reply)


async def _request_suspension(client, fake, url, sid) -> int:
    await _reply(client, fake, url, "hi", **MEGAN)  # the approver has a 1:1 chat with the bot
    await _reply(client, fake, url, "subscriptions")
    form = await _reply(client, fake, url, value={"verb": "subs_suspend", "subscription_id": sid})
    empty = await _reply(client, fake, url, value={**_action(card_of(form), "Ask an approver")["data"], "reason": " "})
    assert "Say why" in _said(empty)
    posted_before = len(fake.messages(MEGAN["conversation_id"]))
    asked = await _reply(
        client, fake, url, value={**_action(card_of(empty), "Ask an approver")["data"], "reason": "Project paused"}
    )
    where = "(in a 1:1 chat and posted the request in the approvals channel |in a 1:1 chat )"
    assert re.search(rf"I asked 1 approver {where}to confirm suspending", _said(asked))
    await fake.wait_for(posted_before + 1, MEGAN["conversation_id"])
    card = card_of(fake.messages(MEGAN["conversation_id"])[-1])
    assert_valid_card(card)
    assert "user-id-1" in card["refresh"]["userIds"] and "user-id-0" not in card["refresh"]["userIds"]
    assert "Project paused" in card_text(card) and "Alex Wilber" in card_text(card)
    return int(_action(card, "Approve")["data"]["approval_id"])


async def _eventually(check) -> None:
    """Until `check()` holds (the durable job runs in the app's background); bounded."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("the expected outcome did not arrive")


async def _wait_status(services, approval_id: int, status: str) -> None:
    async def reached() -> bool:
        return (await services.approvals.load(approval_id)).status == status

    await _eventually(reached)


async def _told(fake, words: str) -> None:
    async def said() -> bool:
        return any(words in m.get("text", "") for m in fake.messages("personal-chat-alex"))

    await _eventually(said)


async def test_approver_approves_and_every_card_and_the_requester_learn_it(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    approval_id = await _request_suspension(client, fake, url, sid)
    # The requester (an admin, not an approver) may not decide; a refresh shows them the status only.
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id})
    assert status == 200 and "Only an approver" in body["value"]
    status, body = await _invoke(client, url, "approval_refresh", {"approval_id": approval_id})
    assert body["type"] == "application/vnd.microsoft.card.adaptive"
    assert "actions" not in body["value"] and "Waiting for an approver" in card_text(body["value"])
    status, body = await _invoke(client, url, "approval_refresh", {"approval_id": approval_id}, **MEGAN)
    assert [a["title"] for a in body["value"]["actions"]] == ["Approve", "Reject"]
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    assert status == 200 and body["statusCode"] == 200
    assert_valid_card(body["value"])
    assert "Approved by Megan Bowen (" in card_text(body["value"])
    await _wait_status(services, approval_id, "suspended")
    customer = sqlite_demo_customer.partner_center_customer_id
    assert str((await services.partner_center.subscription(customer, sid)).status) == "suspended"
    await fake.wait_for(1, "personal-chat-alex")
    await _told(fake, "is suspended")
    updates = [item for item in fake.received if item.method == "PUT"]
    assert updates and "— suspended" in card_text(card_of(updates[-1].activity))
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    assert "Approved by Megan Bowen" in card_text(body["value"]) and "Already approved" in card_text(body["value"])
    events = [e.event_type.value for e in await services.ledger.entries(sqlite_demo_customer.id, subscription_id=sid)]
    assert events == ["purchase", "suspension"]
    # Reactivate (admin) with confirmation.
    await _reply(client, fake, url, "cancel")
    await _reply(client, fake, url, "subscriptions")
    confirm = await _reply(client, fake, url, value={"verb": "subs_reactivate", "subscription_id": sid})
    done = await _reply(client, fake, url, value=_action(card_of(confirm), "Reactivate")["data"])
    assert "is active again" in _said(done)


async def test_reject_changes_nothing_and_tells_the_requester(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    approval_id = await _request_suspension(client, fake, url, sid)
    status, body = await _invoke(client, url, "approval_reject", {"approval_id": approval_id}, **MEGAN)
    assert "Rejected by Megan Bowen" in card_text(body["value"]) and "actions" not in body["value"]
    await _told(fake, "rejected your request")
    customer = sqlite_demo_customer.partner_center_customer_id
    assert str((await services.partner_center.subscription(customer, sid)).status) == "active"


async def test_two_approvers_at_once_make_one_decision(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    await services.organisations.add_member(
        "contoso",
        "pattif@example.com",
        ["approver"],
        actor="t",
        display_name="Patti Fernandez",
        channel_user_id="user-id-2",
        aad_object_id="00000000-0000-0000-0000-0000000000022",
    )
    approval_id = await _request_suspension(client, fake, url, sid)
    patti = {
        "user_id": "user-id-2",
        "name": "Patti Fernandez",
        "aad_object_id": "00000000-0000-0000-0000-0000000000022",
        "conversation_id": "personal-chat-patti",
    }
    results = await asyncio.gather(
        _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN),
        _invoke(client, url, "approval_reject", {"approval_id": approval_id}, **patti),
    )
    texts = [card_text(body["value"]) for _, body in results]
    decided = await services.approvals.load(approval_id)
    assert decided.status in ("suspending", "suspended", "rejected")
    winner = decided.decider_name
    assert all(winner in text for text in texts)
    async with services.sessions() as session:
        from sqlalchemy import func, select

        from services.models import AuditEntry

        decisions = await session.scalar(
            select(func.count())
            .select_from(AuditEntry)
            .where(AuditEntry.action.in_(("approval.approve", "approval.reject")))
        )
    assert decisions == 1


async def test_expired_requests_cannot_be_approved(make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    approval_id = await _request_suspension(client, fake, url, sid)
    async with services.sessions() as session:
        await session.execute(
            update(Approval).where(Approval.id == approval_id).values(expires_at=utcnow() - timedelta(hours=1))
        )
        await session.commit()
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    assert status == 200 and "expired" in card_text(body["value"]).lower()
    assert (await services.approvals.load(approval_id)).status == "expired"
    # The click noticed it: the requester is told and every copy of the card shows it.
    await _told(fake, "expired on")
    updates = [item for item in fake.received if item.method == "PUT"]
    assert updates and "expired" in card_text(card_of(updates[-1].activity)).lower()


async def test_an_expiring_request_tells_the_requester_without_anyone_clicking(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    approval_id = await _request_suspension(client, fake, url, sid)
    async with services.sessions() as session:
        jobs = list(await session.scalars(select(Job).where(Job.kind == "approval.expire")))
        assert [job.payload["approval_id"] for job in jobs] == [approval_id]  # due when the request expires
        approval = await session.get(Approval, approval_id)
        assert approval is not None and as_utc(jobs[0].run_after) == as_utc(approval.expires_at)
        # Time passes: the request's time is up and its check is due.
        past = utcnow() - timedelta(minutes=1)
        await session.execute(update(Approval).where(Approval.id == approval_id).values(expires_at=past))
        await session.execute(update(Job).where(Job.id == jobs[0].id).values(run_after=past))
        await session.commit()
    await _wait_status(services, approval_id, "expired")
    await _told(fake, "expired on")
    told = [m for m in fake.messages("personal-chat-alex") if "expired on" in m.get("text", "")]
    assert len(told) == 1 and "Nothing was changed" in told[0]["text"]

    async def card_updated() -> bool:
        updates = [item for item in fake.received if item.method == "PUT"]
        return bool(updates) and "expired" in card_text(card_of(updates[-1].activity)).lower()

    await _eventually(card_updated)
    card = card_of([item for item in fake.received if item.method == "PUT"][-1].activity)
    assert_valid_card(card)
    assert "actions" not in card or not any(a.get("title") == "Approve" for a in card["actions"])
    # A later click changes nothing and tells nobody again.
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    assert status == 200 and "expired" in card_text(body["value"]).lower()
    assert len([m for m in fake.messages("personal-chat-alex") if "expired on" in m.get("text", "")]) == 1
    customer = sqlite_demo_customer.partner_center_customer_id
    assert str((await services.partner_center.subscription(customer, sid)).status) == "active"


async def test_a_non_approver_and_another_organisation_cannot_decide(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    approval_id = await _request_suspension(client, fake, url, sid)
    await services.organisations.add_member(
        "contoso",
        "billing@example.com",
        ["billing"],
        actor="t",
        display_name="Bill",
        channel_user_id="user-id-3",
        aad_object_id="00000000-0000-0000-0000-0000000000023",
    )
    bill = {
        "user_id": "user-id-3",
        "name": "Bill",
        "aad_object_id": "00000000-0000-0000-0000-0000000000023",
        "conversation_id": "chat-bill",
    }
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **bill)
    assert status == 200 and "Only an approver" in body["value"]
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": "abc"}, **MEGAN)
    assert "not one of your organisation's" in body["value"]
    assert (await services.approvals.load(approval_id)).status == "pending"


@pytest.mark.parametrize(
    "fault", [{"kind": "error", "status": 503}, {"kind": "throttle", "retryAfter": 1}], ids=["5xx", "429"]
)
async def test_microsoft_failing_during_the_suspension_shows_failed_and_retry(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox, fault
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    approval_id = await _request_suspension(client, fake, url, sid)
    await sandbox.admin(
        "POST",
        "/faults",
        {**fault, "method": "PATCH", "path": "/v1/customers/*/subscriptions/*", "nth": 1, "repeat": 50},
    )
    await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    await _wait_status(services, approval_id, "failed")
    customer = sqlite_demo_customer.partner_center_customer_id
    assert str((await services.partner_center.subscription(customer, sid)).status) == "active"
    assert [
        e.event_type.value for e in await services.ledger.entries(sqlite_demo_customer.id, subscription_id=sid)
    ] == ["purchase"]
    status, body = await _invoke(client, url, "approval_refresh", {"approval_id": approval_id}, **MEGAN)
    assert "failed" in card_text(body["value"]) and [a["title"] for a in body["value"]["actions"]] == ["Retry"]
    await sandbox.admin("DELETE", "/faults")
    status, body = await _invoke(client, url, "approval_retry", {"approval_id": approval_id}, **MEGAN)
    assert status == 200
    await _wait_status(services, approval_id, "suspended")


async def test_addons_auto_renew_and_cancel_through_the_cards(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    listing = await _reply(client, fake, url, "subscriptions")
    addons = await _reply(client, fake, url, value=_action(card_of(listing), "Add-ons")["data"])
    assert "Exchange Online Archiving" in _said(addons) and "$3.00 per licence per month" in _said(addons)
    order = _action(card_of(addons), "Order the add-on")["data"]
    archiving = "CFQ7TTC0LH0J:0001"
    bad = await _reply(client, fake, url, value={**order, "addon": archiving, "quantity": "0"})
    assert "Choose between 1 and" in _said(bad)
    assert any(b.get("value") == "0" for b in card_of(bad)["body"] if b.get("id") == "quantity")
    order = _action(card_of(bad), "Order the add-on")["data"]
    assert order["prices"][archiving].endswith(":3.00:USD")
    # A price that changed after the card was shown: nothing is ordered, the card shows the new price.
    moved = await _reply(
        client, fake, url, value={**order, "prices": {archiving: "0:2.50:USD"}, "addon": archiving, "quantity": "2"}
    )
    assert "changed since the card was shown" in _said(moved) and "$3.00 per licence" in _said(moved)
    customer = sqlite_demo_customer.partner_center_customer_id
    assert await services.partner_center.subscription_addons(customer, sid) == []
    order = _action(card_of(moved), "Order the add-on")["data"]
    done = await _reply(client, fake, url, value={**order, "addon": archiving, "quantity": "2"})
    assert "Ordered 2 × Exchange Online Archiving" in _said(done) and "Add-on: Exchange Online Archiving" in _said(done)
    again = await _reply(client, fake, url, value={**order, "addon": archiving, "quantity": "2"})
    assert "already done from this card" in _said(again) and "nothing more was done" in _said(again)
    customer = sqlite_demo_customer.partner_center_customer_id
    assert len(await services.partner_center.subscription_addons(customer, sid)) == 1

    confirm = await _reply(client, fake, url, value={"verb": "subs_autorenew", "subscription_id": sid})
    assert "ends on" in _said(confirm)
    off = await _reply(client, fake, url, value=_action(card_of(confirm), "Turn auto-renew off")["data"])
    assert "Auto-renew is off" in _said(off)

    confirm = await _reply(client, fake, url, value={"verb": "subs_cancel", "subscription_id": sid})
    assert "Refund\n$30.00 (10 × $6.00 × 15/30 days)" in _said(confirm)
    cancelled = await _reply(client, fake, url, value=_action(card_of(confirm), "Cancel the subscription")["data"])
    assert "is cancelled" in _said(cancelled)
    assert str((await services.partner_center.subscription(customer, sid)).status) == "deleted"


async def test_a_card_gone_stale_is_reloaded_and_asked_again(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    await _reply(client, fake, url, "subscriptions")
    preview = await _reply(
        client, fake, url, value={"verb": "subs_quantity_preview", "subscription_id": sid, "quantity": "12"}
    )
    customer = sqlite_demo_customer.partner_center_customer_id
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(customer, current.model_copy(update={"quantity": 15}))
    stale = await _reply(client, fake, url, value=_action(card_of(preview), "Add 2 seats")["data"])
    assert "changed meanwhile" in _said(stale) and "New number of seats" in _said(stale)
    assert (await services.partner_center.subscription(customer, sid)).quantity == 15


async def test_changes_are_refused_while_suspended(make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    customer = sqlite_demo_customer.partner_center_customer_id
    current = await services.partner_center.subscription(customer, sid)
    await services.partner_center.update_subscription(
        customer, current.model_copy(update={"status": SubscriptionStatus.SUSPENDED})
    )
    listing = await _reply(client, fake, url, "subscriptions")  # first read syncs it
    assert "Suspended" in _said(listing) and "Reactivate" in _said(listing)
    reply = await _reply(
        client, fake, url, value={"verb": "subs_quantity_preview", "subscription_id": sid, "quantity": "12"}
    )
    assert "suspended: its seats cannot change" in _said(reply)


async def test_a_billing_reader_sees_the_list_without_change_buttons(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    await services.organisations.add_member(
        "contoso",
        "billing@example.com",
        ["billing"],
        actor="t",
        display_name="Bill",
        channel_user_id="user-id-3",
        aad_object_id="00000000-0000-0000-0000-0000000000023",
    )
    bill = {
        "user_id": "user-id-3",
        "name": "Bill",
        "aad_object_id": "00000000-0000-0000-0000-0000000000023",
        "conversation_id": "chat-bill",
    }
    menu = await _reply(client, fake, url, "menu", **bill)
    assert "Subscriptions" in _said(menu)
    listing = await _reply(client, fake, url, "subscriptions", **bill)
    said = _said(listing)
    assert "10 seats" in said and "Change quantity" not in said and "Suspend" not in said
    forged = await _reply(
        client, fake, url, value={"verb": "subs_quantity_preview", "subscription_id": sid, "quantity": "12"}, **bill
    )
    assert "Only an admin" in _said(forged)
    customer = sqlite_demo_customer.partner_center_customer_id
    assert (await services.partner_center.subscription(customer, sid)).quantity == 10


async def test_the_approvals_channel_gets_a_status_card_that_is_updated_too(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    channel = "19:approvals@thread.tacv2"
    await _reply(client, fake, url, "menu", conversation_id=channel, conversation_type="channel", mention_bot=True)
    await services.approvals.set_channel("contoso", channel, actor="operator")
    approval_id = await _request_suspension(client, fake, url, sid)
    posted = card_of(fake.messages(channel)[-1])
    assert_valid_card(posted)
    # Everyone in the channel sees the decision buttons and who may use them (a click by anyone else is refused).
    assert "Suspension request" in card_text(posted) and "Only Megan Bowen can decide." in card_text(posted)
    assert [a["title"] for a in posted["actions"]] == ["Approve", "Reject"]
    assert posted["refresh"]["action"]["data"] == {"approval_id": approval_id}
    await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    await _wait_status(services, approval_id, "suspended")

    async def channel_updated() -> bool:
        return any(
            item.method == "PUT" and item.conversation_id == channel and "— suspended" in str(item.activity)
            for item in fake.received
        )

    await _eventually(channel_updated)


async def test_a_request_no_approver_could_receive_names_them_waits_for_them_and_can_be_withdrawn(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    """No approver has chatted with the bot yet: the admin learns who can decide and what they must
    do, the list shows the request waiting, the approver gets it on first contact, and the admin
    can withdraw it (every copy of the card then says so)."""
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    await _reply(client, fake, url, "subscriptions")
    form = await _reply(client, fake, url, value={"verb": "subs_suspend", "subscription_id": sid})
    asked = await _reply(
        client, fake, url, value={**_action(card_of(form), "Ask an approver")["data"], "reason": "Project paused"}
    )
    said_ = _said(asked)
    assert "none of your approvers has chatted with me yet" in said_ and "Megan Bowen (meganb@example.com)" in said_
    assert "say hi" in said_ and "withdraw it from the list" in said_
    assert "waiting for an approver" in said_ and "Suspend" not in [
        a["title"] for a in card_of(asked)["body"][-1]["items"][-1]["actions"]
    ]
    # The approver says hi for the first time: the request that waited is posted to her.
    await _reply(client, fake, url, "hi", **MEGAN)
    await fake.wait_for(2, MEGAN["conversation_id"])
    request_card = card_of(fake.messages(MEGAN["conversation_id"])[-1])
    assert "Project paused" in card_text(request_card) and "Approve" in [a["title"] for a in request_card["actions"]]
    # Saying hi again posts nothing more.
    await _reply(client, fake, url, "menu", **MEGAN)
    assert (
        sum(
            card_of(m) is not None and "Suspension request" in card_text(card_of(m))
            for m in fake.messages(MEGAN["conversation_id"])
        )
        == 1
    )
    # The admin withdraws it: nothing changes at Microsoft, and the approver's card says so.
    withdrawn = await _reply(
        client, fake, url, value=_action(card_of(asked), "Withdraw the suspension request")["data"]
    )
    assert "Withdrawn: Microsoft 365 Business Basic stays active." in _said(withdrawn)
    assert "Suspend" in _said(withdrawn) and "waiting for an approver" not in _said(withdrawn)
    updates = [
        item for item in fake.received if item.method == "PUT" and item.conversation_id == MEGAN["conversation_id"]
    ]
    assert updates and "Withdrawn by Alex Wilber" in card_text(card_of(updates[-1].activity))
    assert "actions" not in card_of(updates[-1].activity) or not card_of(updates[-1].activity)["actions"]
    approval_id = int(_action(request_card, "Approve")["data"]["approval_id"])
    status, body = await _invoke(client, url, "approval_approve", {"approval_id": approval_id}, **MEGAN)
    assert "Withdrawn by Alex Wilber" in card_text(body["value"])
    customer = sqlite_demo_customer.partner_center_customer_id
    assert str((await services.partner_center.subscription(customer, sid)).status) == "active"


GREEK = re.compile(r"[α-ωΑ-Ω]")  # a Greek reader's dates (month names, a.m./p.m.)


async def test_each_approver_reads_the_request_card_in_their_own_language(
    make_bot, connector, sqlite_services, sqlite_demo_customer, sandbox
):
    """The approver's Teams is Greek, the requester's English: the card posted to the approver's
    chat, and its copy updated once the requester withdraws (in the requester's turn), read Greek;
    what the requester reads stays English."""
    fake, url = connector
    client, services, sid = await _setup(make_bot, sqlite_services, sqlite_demo_customer, sandbox)
    await _reply(client, fake, url, "hi", locale="el-GR", **MEGAN)  # the bot keeps her Teams locale
    await _reply(client, fake, url, "subscriptions")
    form = await _reply(client, fake, url, value={"verb": "subs_suspend", "subscription_id": sid})
    posted_before = len(fake.messages(MEGAN["conversation_id"]))
    asked = await _reply(
        client, fake, url, value={**_action(card_of(form), "Ask an approver")["data"], "reason": "Project paused"}
    )
    assert "I asked 1 approver" in _said(asked) and not GREEK.search(_said(asked))
    await fake.wait_for(posted_before + 1, MEGAN["conversation_id"])
    posted = card_text(card_of(fake.messages(MEGAN["conversation_id"])[-1]))
    assert "Project paused" in posted and GREEK.search(posted), posted
    withdrawn = await _reply(
        client, fake, url, value=_action(card_of(asked), "Withdraw the suspension request")["data"]
    )
    assert "Withdrawn" in _said(withdrawn) and not GREEK.search(_said(withdrawn))
    updates = [
        item for item in fake.received if item.method == "PUT" and item.conversation_id == MEGAN["conversation_id"]
    ]
    assert updates, "the approver's copy was not updated"
    updated = card_text(card_of(updates[-1].activity))
    assert "Withdrawn by Alex Wilber" in updated and GREEK.search(updated), updated
