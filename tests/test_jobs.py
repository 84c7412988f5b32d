"""Durable jobs on SQLite and PostgreSQL: exactly once per key, one runner per job, restart-safe,
failures retried then alerted, outcomes delivered as proactive messages."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace

from sqlalchemy import update

from services.db import utcnow
from services.errors import InvalidInput
from services.jobs import FAILED, GENERIC_FAILURE, PENDING, SUCCEEDED, JobService
from services.models import Job
from tests.conftest import message, runtime_of


def _service(services, **kwargs) -> JobService:
    return JobService(services.sessions, services.alerts, **kwargs)


async def test_same_key_finds_the_same_job_and_it_runs_once(services):
    calls = []

    async def handler(job):
        calls.append(job.id)
        return {"message": f"created tenant for {job.payload['company']}"}

    jobs = _service(services)
    jobs.register("create_tenant", handler)
    first, created = await jobs.submit(
        "create_tenant",
        idempotency_key="form-1",
        payload={"company": "Contoso"},
        organisation_id=None,
        requested_by="a",
    )
    again, created_again = await jobs.submit(
        "create_tenant", idempotency_key="form-1", payload={"company": "Other"}, organisation_id=None, requested_by="a"
    )
    assert created and not created_again and again.id == first.id
    assert await jobs.run_pending() == 1
    assert await jobs.run_pending() == 0
    done = await jobs.get(first.id)
    assert calls == [first.id]
    assert done.status == SUCCEEDED and done.result == {"message": "created tenant for Contoso"}


async def test_two_runners_never_run_one_job_twice(services):
    calls: list[int] = []

    async def handler(job):
        calls.append(job.id)
        await asyncio.sleep(0)
        return {}

    replicas = [_service(services, owner=f"replica-{n}") for n in range(3)]
    for runner in replicas:
        runner.register("work", handler)
    for n in range(20):
        await replicas[0].submit("work", idempotency_key=f"k{n}", payload={}, organisation_id=None, requested_by="x")
    ran = await asyncio.gather(*(runner.run_pending() for runner in replicas))
    assert sum(ran) == 20
    assert sorted(calls) == sorted(set(calls)) and len(calls) == 20


async def test_an_expired_lease_is_claimed_again_after_a_crash(services):
    async def handler(_job):
        return {"message": "done"}

    crashed = _service(services, owner="crashed")
    crashed.register("work", handler)
    job, _ = await crashed.submit("work", idempotency_key="k", payload={}, organisation_id=None, requested_by="x")
    claimed = await crashed._claim()  # the replica claims it, then dies before finishing
    assert claimed is not None and claimed.id == job.id
    survivor = _service(services, owner="survivor")
    survivor.register("work", handler)
    assert await survivor.run_pending() == 0  # the lease is still valid
    async with services.sessions() as session:
        await session.execute(
            update(Job).where(Job.id == job.id).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    assert await survivor.run_pending() == 1
    finished = await survivor.get(job.id)
    assert finished.status == SUCCEEDED and finished.attempts == 2


async def test_a_long_job_keeps_its_lease_and_no_second_runner_takes_it(services):
    """A handler that runs several leases long (a warnings pass over many organisations): its lease is
    extended while it runs, so another runner finds nothing to claim until it has finished."""
    started, release = asyncio.Event(), asyncio.Event()

    async def long_handler(_job):
        started.set()
        await release.wait()
        return {"message": "done"}

    first = _service(services, owner="first", lease_seconds=0.3)
    first.register("work", long_handler)
    second = _service(services, owner="second", lease_seconds=0.3)
    second.register("work", long_handler)
    job, _ = await first.submit("work", idempotency_key="long", payload={}, organisation_id=None, requested_by="x")
    running = asyncio.create_task(first.run_pending())
    await started.wait()
    claimed_at = utcnow()
    while utcnow() < claimed_at + timedelta(seconds=1.0):  # more than three leases pass
        assert await second._claim() is None, "a second runner claimed a job whose runner is at it"
        await asyncio.sleep(0.05)
    release.set()
    assert await running == 1
    finished = await first.get(job.id)
    assert finished.status == SUCCEEDED and finished.attempts == 1


async def test_unexpected_failures_are_retried_then_alerted(services):
    attempts = []

    async def handler(_job):
        attempts.append(1)
        raise RuntimeError("partner center said no (secret=abc)")

    jobs = _service(services)
    jobs.register("flaky", handler)
    job, _ = await jobs.submit(
        "flaky", idempotency_key="k", payload={}, organisation_id=7, requested_by="x", max_attempts=2
    )
    await jobs.run_pending()
    assert (await jobs.get(job.id)).status == PENDING  # backing off before the second attempt
    async with services.sessions() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(run_after=utcnow()))
        await session.commit()
    await jobs.run_pending()
    failed = await jobs.get(job.id)
    assert failed.status == FAILED and len(attempts) == 2
    assert failed.error_message == GENERIC_FAILURE and "secret" not in failed.error_message
    alerts = await services.alerts.list()
    assert [a.code for a in alerts] == ["job_failed"] and alerts[0].organisation_id == 7


async def test_domain_errors_fail_at_once_with_their_message(services):
    async def handler(_job):
        raise InvalidInput("The domain contoso.onmicrosoft.com is taken.")

    jobs = _service(services)
    jobs.register("create_tenant", handler)
    job, _ = await jobs.submit("create_tenant", idempotency_key="k", payload={}, organisation_id=None, requested_by="x")
    await jobs.run_pending()
    failed = await jobs.get(job.id)
    assert failed.status == FAILED and failed.attempts == 1
    assert failed.error_message == "The domain contoso.onmicrosoft.com is taken."
    assert await services.alerts.list() == []


async def test_a_failed_notification_is_delivered_on_a_later_pass(services):
    delivered = []
    failures = [True]

    async def handler(_job):
        return {"message": "ok"}

    async def notifier(job):
        if failures:
            failures.pop()
            raise ConnectionError("Teams is down")
        delivered.append(job.id)

    jobs = _service(services)
    jobs.register("work", handler)
    jobs.set_notifier(notifier)
    job, _ = await jobs.submit(
        "work", idempotency_key="k", payload={}, organisation_id=None, requested_by="x", notify_conversation_id="c"
    )
    await jobs.run_pending()
    assert delivered == []
    await jobs.run_pending()
    assert delivered == []  # not hammering a channel that just failed
    async with services.sessions() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(updated_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
    await jobs.run_pending()
    assert delivered == [job.id]
    async with services.sessions() as session:
        await session.execute(update(Job).where(Job.id == job.id).values(updated_at=utcnow() - timedelta(minutes=1)))
        await session.commit()
    await jobs.run_pending()
    assert delivered == [job.id]  # told exactly once


async def test_job_outcome_reaches_the_requester_as_a_proactive_message(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    await client.post("/api/messages", json=message("menu", service_url=url))
    await fake.wait_for(1)
    jobs = runtime_of(client).services.jobs

    async def handler(job):
        return {"message": f"Your tenant {job.payload['domain']} is ready."}

    jobs.register("demo_tenant", handler)
    await jobs.submit(
        "demo_tenant",
        idempotency_key="card-42",
        payload={"domain": "contosodemo.onmicrosoft.com"},
        organisation_id=None,
        requested_by="alexw@example.com",
        notify_conversation_id="personal-chat-alex",
    )
    await fake.wait_for(2)  # the app's own runner picks it up
    outcome = fake.messages()[1]
    assert outcome["text"] == "Your tenant contosodemo.onmicrosoft.com is ready."
    assert fake.received[-1].conversation_id == "personal-chat-alex"


async def test_proactive_send_and_update_by_stored_reference(make_bot, connector):
    fake, url = connector
    client = await make_bot()
    await client.post("/api/messages", json=message("menu", service_url=url))
    await fake.wait_for(1)
    runtime = runtime_of(client)
    from microsoft_agents.hosting.core import MessageFactory

    message_id = await runtime.messenger.send("personal-chat-alex", MessageFactory.text("Approval needed"))
    assert message_id is not None
    await runtime.messenger.update("personal-chat-alex", message_id, MessageFactory.text("Approved by Megan"))
    sent, updated = fake.received[-2], fake.received[-1]
    assert sent.method == "POST" and sent.activity["text"] == "Approval needed"
    assert updated.method == "PUT" and updated.updated_id == message_id
    assert updated.activity["text"] == "Approved by Megan"
    member = await runtime.services.access.resolve(
        __import__("services.access", fromlist=["ChannelIdentity"]).ChannelIdentity(
            tenant_id=None, aad_object_id=None, channel_user_id="user-id-0"
        )
    )
    await runtime.messenger.send_to_member(member.member_id, MessageFactory.text("Just for you"))
    assert fake.received[-1].activity["text"] == "Just for you"


async def test_a_follow_up_waits_for_the_turn_that_submitted_its_job() -> None:
    """The notifier takes the conversation's turn lock: an outcome never overtakes the turn's reply."""
    from bot.job_notices import JobNotifier

    sent: list[str] = []

    class _Messenger:
        async def send(self, conversation_id: str, _activity: object) -> None:
            sent.append(conversation_id)

    class _WatchedLock(asyncio.Lock):
        """Tells when someone starts waiting for it while it is held."""

        def __init__(self) -> None:
            super().__init__()
            self.waited_for = asyncio.Event()

        async def acquire(self) -> bool:
            if self.locked():
                self.waited_for.set()
            return await super().acquire()

    lock = _WatchedLock()
    notifier = JobNotifier(_Messenger(), conversation_lock=lambda _conversation: lock)  # type: ignore[arg-type]
    job = SimpleNamespace(notify_conversation_id="chat-1", kind="k", status="succeeded", result={}, error_message="")
    async with lock:  # the turn is still running
        pending = asyncio.create_task(notifier(job))  # type: ignore[arg-type]
        waiting = asyncio.create_task(lock.waited_for.wait())
        # Until the notifier has come to the lock (or, wrongly, finished without it).
        await asyncio.wait([waiting, pending], timeout=10, return_when=asyncio.FIRST_COMPLETED)
        assert waiting.done() and not pending.done()
        assert sent == []
    await pending
    assert sent == ["chat-1"]


async def test_a_task_started_by_a_follow_up_runs_like_a_typed_one_and_never_interrupts(make_bot, connector) -> None:
    """`CspBot.begin_task` (used after a job, e.g. "add subscription" once the tenant exists): it starts
    the task for a caller whose role allows it, and never replaces a task already waiting."""
    from dataclasses import replace as replace_caller

    from services.seed import DEMO_SLUG
    from tests.dialog_fixtures import NAME_QUESTION, survey_tasks

    fake, url = connector
    client = await make_bot(tasks=survey_tasks)
    await client.post("/api/messages", json=message("menu", service_url=url))  # the chat is known now
    await fake.wait_for(1)
    runtime = runtime_of(client)
    org = await runtime.services.organisations.get(DEMO_SLUG)
    caller = await runtime.services.access.member_caller(org.id, "AlexW@example.com")
    assert caller is not None and "admin" in caller.roles

    assert not await runtime.bot.begin_task("personal-chat-alex", "survey", replace_caller(caller, roles=frozenset()))
    assert await runtime.bot.begin_task("personal-chat-alex", "survey", caller)
    await fake.wait_for(2)
    assert fake.messages()[1]["text"] == NAME_QUESTION
    assert not await runtime.bot.begin_task("personal-chat-alex", "survey", caller)  # one is waiting
    assert await runtime.services.access.member_caller(org.id, "nobody@example.com") is None

    # The user answers the proactively started task as usual.
    await client.post("/api/messages", json=message("Ada", service_url=url))
    await fake.wait_for(3)
    assert len(fake.messages()) == 3


async def test_the_queue_depth_counts_due_jobs_the_oldest_wait_and_running_ones(services):
    """What /metrics shows of the durable queue: a job due later does not count as waiting."""

    async def handler(_job):
        return {}

    jobs = _service(services)
    jobs.register("work", handler)
    assert (await jobs.depth()) == type(await jobs.depth())(0, 0, 0.0)
    now = utcnow()
    for key, due in (("late", now - timedelta(minutes=3)), ("due", now - timedelta(seconds=5))):
        await jobs.submit(
            "work", idempotency_key=key, payload={}, organisation_id=None, requested_by="a", run_after=due
        )
    await jobs.submit(
        "work",
        idempotency_key="later",
        payload={},
        organisation_id=None,
        requested_by="a",
        run_after=now + timedelta(hours=1),
    )
    depth = await jobs.depth()
    assert (depth.waiting, depth.running) == (2, 0) and 180 <= depth.oldest_waiting_seconds < 240
    claimed = await jobs._claim()  # a runner took the oldest and is running it
    assert claimed is not None and claimed.idempotency_key == "late"
    depth = await jobs.depth()
    assert (depth.waiting, depth.running) == (1, 1) and 5 <= depth.oldest_waiting_seconds < 60
