"""Two bot processes on one PostgreSQL database and one Partner Center, as behind a load balancer:
a conversation whose steps alternate between them goes on as if there were one, and the replica that
was running an order when it was killed leaves nothing lost or doubled — the order job's lease runs
out and the other replica finishes it (one subscription at Microsoft, one row, one ledger entry, one
reply per step and one outcome message).

The in-process halves of this are in tests/test_concurrency.py (replicas racing on one conversation),
tests/test_jobs.py (an expired lease is claimed again) and tests/test_ordering.py (a job rerun after a
crash past checkout buys nothing more); here they happen to real processes, killed with SIGKILL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import func, select

from services.container import build_services
from services.db import create_engine
from services.jobs import SUCCEEDED
from services.migrate import upgrade_database
from services.models import Job, LedgerEntry, SubscriptionRow
from services.ordering import ORDER_JOB
from services.settings import Settings
from tests.conftest import Sandbox, link_demo_customer
from tests.fakes import FakeConnector, said
from tests.replicas import PartnerCenterGate, Replicas
from tests.test_add_subscription import Chat, action, choose

pytestmark = pytest.mark.postgres

BASIC = "CFQ7TTC0LH18:0001"
JOB_LEASE_SECONDS = 5  # the smallest the settings allow: the survivor takes over soon after the kill
TAKE_OVER_BOUND_SECONDS = 90.0


async def _first_set(events: dict[str, asyncio.Event], within: float) -> str:
    """The name of the first event to be set (bounded)."""
    waiters = {asyncio.ensure_future(event.wait()): name for name, event in events.items()}
    try:
        done, _ = await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    assert done, f"no replica checked out within {within:.0f} s"
    return waiters[next(iter(done))]


async def _job_finished(sessions: Any, within: float) -> Job:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        async with sessions() as session:
            job = await session.scalar(select(Job).where(Job.kind == ORDER_JOB).order_by(Job.id.desc()))
        if job is not None and job.finished_at is not None:
            return job
        assert asyncio.get_running_loop().time() < deadline, f"the order job did not finish: {job and job.status}"
        await asyncio.sleep(0.2)


async def test_a_conversation_alternating_between_replicas_and_a_replica_killed_mid_order(
    postgres_url: str,
    sandbox: Sandbox,
    connector: tuple[FakeConnector, str],
    aiohttp_server: Any,
    tmp_path: Path,
) -> None:
    fake, service_url = connector
    engine = create_engine(postgres_url)
    replicas = Replicas(tmp_path)
    gates: dict[str, PartnerCenterGate] = {}
    try:
        await upgrade_database(engine)
        settings = Settings(database_url=postgres_url, mail_outbox_dir=tmp_path / "outbox")
        services = build_services(engine, settings, sandbox.client, sandbox.microsoft_clock)
        customer = await link_demo_customer(services)  # the demo organisation, linked and allowed to buy
        assert customer.partner_center_customer_id

        async with aiohttp.ClientSession() as session:
            started = {}
            for name in ("a", "b"):
                gates[name] = PartnerCenterGate(sandbox.url, session)
                gate_url = str((await aiohttp_server(gates[name].app())).make_url("")).rstrip("/")
                started[name] = replicas.start_sharing(
                    name,
                    postgres_url,
                    gate_url,
                    sandbox.token,
                    JOB_LEASE_SECONDS=str(JOB_LEASE_SECONDS),
                    JOB_POLL_INTERVAL_SECONDS="0.2",
                )
            await asyncio.gather(*(replica.wait_healthy(session) for replica in started.values()))

            # One conversation, each step on the other replica than the step before.
            chat = Chat(started["a"], fake, service_url)
            categories = await chat.say("add subscription")
            assert "Pick a category" in said(categories)
            chat.client = started["b"]
            groups = await chat.submit(action(categories, "Business"))
            chat.client = started["a"]
            products = await chat.submit(action(groups, "Microsoft 365"))
            chat.client = started["b"]
            basic = next(choose(products, i) for i in range(3) if choose(products, i)["value"] == BASIC)
            configure = await chat.submit(basic)
            assert "Quantity (1–300 licences)" in said(configure)
            chat.client = started["a"]
            quote = await chat.submit({**action(configure, "Show price"), "plan": "P1Y:monthly", "quantity": "5"})
            assert "$27.60 per month" in said(quote)

            # The order: whichever replica's job runner claims it gets Microsoft's order placed but
            # never hears back, and is killed there; the other one must finish it.
            for gate in gates.values():
                gate.hold_checkouts = True
            chat.client = started["b"]
            working = await chat.submit(action(quote, "Create subscription"))
            assert "Ordering **Microsoft 365 Business Basic** × 5" in said(working)
            claimed_by = await _first_set({name: gate.holding for name, gate in gates.items()}, within=60)
            survivor = "b" if claimed_by == "a" else "a"
            started[claimed_by].kill()
            gates[survivor].hold_checkouts = False

            job = await _job_finished(services.sessions, TAKE_OVER_BOUND_SECONDS)
            outcome = await chat.wait()  # the job's follow-up, sent by the survivor

        assert not started[claimed_by].alive() and started[survivor].alive()
        assert (job.status, job.attempts) == (SUCCEEDED, 2)  # the killed replica's try, then the survivor's
        bought = await sandbox.client.subscriptions(customer.partner_center_customer_id)
        assert len(bought) == 1 and bought[0].quantity == 5
        assert (bought[0].offer_id or "").upper().startswith(BASIC)
        assert "Subscription created" in said(outcome) and bought[0].id in said(outcome)
        async with services.sessions() as db:
            assert await db.scalar(select(func.count()).select_from(SubscriptionRow)) == 1
            assert await db.scalar(select(func.count()).select_from(LedgerEntry)) == 1
        # One reply per step and one outcome: nothing lost, nothing doubled, no error card.
        replies = fake.messages()
        assert len(replies) == 7, [said(reply)[:80] for reply in replies]
        assert not [reply for reply in replies if "Sorry, something went wrong" in said(reply)]
    finally:
        for gate in gates.values():
            gate.release()
        replicas.kill_all()
        await engine.dispose()
