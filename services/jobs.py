"""Durable jobs: work that can outlast Teams' ~15 s answer window.

The turn submits a job and answers at once; a runner in the app claims it through a lease (one
runner per job across replicas, restart-safe: an expired lease is claimed again), runs its
handler, stores the outcome and hands it to the notifier, which tells the requester. Submitting
the same idempotency key again returns the same job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.alerts import AlertService
from services.db import utcnow
from services.errors import Conflict, DomainError
from services.formatting import Reader, reading
from services.i18n import N_, _
from services.logging_context import correlation_scope
from services.models import Job

R = TypeVar("R")
log = logging.getLogger(__name__)

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
FINISHED = (SUCCEEDED, FAILED)
GENERIC_FAILURE = N_("Something went wrong on our side; the reseller's operator has been alerted.")
# A requester who could not be told is tried again this long after the last try, for a day at most.
RENOTIFY_AFTER = timedelta(seconds=30)
RENOTIFY_FOR = timedelta(days=1)


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    status: str
    organisation_id: int | None
    requested_by: str
    payload: Mapping[str, Any]
    result: Mapping[str, Any] | None
    error_message: str
    attempts: int
    notify_conversation_id: str | None
    created_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        kind=job.kind,
        status=job.status,
        organisation_id=job.organisation_id,
        requested_by=job.requested_by,
        payload=dict(job.payload or {}),
        result=dict(job.result) if job.result is not None else None,
        error_message=job.error_message,
        attempts=job.attempts,
        notify_conversation_id=job.notify_conversation_id,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )


@dataclass(frozen=True)
class JobQueueDepth:
    """The durable queue now: jobs due and not yet claimed, jobs being run, and how long the oldest due
    job has waited past its `run_after` (0 when none waits)."""

    waiting: int
    running: int
    oldest_waiting_seconds: float


JobHandler = Callable[[JobView], Awaitable[Mapping[str, Any]]]
JobNotifier = Callable[[JobView], Awaitable[None]]
# How a job's requester reads (see `JobService.set_reader`).
JobReader = Callable[[JobView], Awaitable[Reader]]


class JobService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        alerts: AlertService,
        *,
        lease_seconds: float = 120,
        poll_interval: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._alerts = alerts
        self._lease = timedelta(seconds=lease_seconds)
        self._poll_interval = poll_interval
        self.owner = owner or f"runner-{uuid.uuid4().hex[:12]}"
        self._handlers: dict[str, JobHandler] = {}
        self._notifier: JobNotifier | None = None
        self._reader: JobReader | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def register(self, kind: str, handler: JobHandler) -> None:
        if kind in self._handlers:
            raise ValueError(f"a handler for job kind {kind!r} is already registered")
        self._handlers[kind] = handler

    def set_notifier(self, notifier: JobNotifier) -> None:
        self._notifier = notifier

    def set_reader(self, reader: JobReader) -> None:
        """How the requester of a job reads (their language, their organisation's time zone): a job
        runs, and its outcome is told, in it — messages, e-mails and cards the job writes included."""
        self._reader = reader

    async def _reading_of(self, job: JobView) -> Reader:
        if self._reader is None:
            return Reader()
        try:
            return await self._reader(job)
        except Exception:  # the job still runs, in English
            log.exception("job %s: could not tell how its requester reads", job.id)
            return Reader()

    async def submit(
        self,
        kind: str,
        *,
        idempotency_key: str,
        payload: Mapping[str, Any],
        organisation_id: int | None,
        requested_by: str,
        notify_conversation_id: str | None = None,
        max_attempts: int = 3,
        run_after: datetime | None = None,
    ) -> tuple[JobView, bool]:
        """The job for this key, and whether this call created it."""
        if kind not in self._handlers:
            raise ValueError(f"no handler for job kind {kind!r}")
        async with self._sessions() as session:
            job = Job(
                kind=kind,
                idempotency_key=idempotency_key,
                payload=dict(payload),
                organisation_id=organisation_id,
                requested_by=requested_by,
                notify_conversation_id=notify_conversation_id,
                max_attempts=max_attempts,
            )
            if run_after is not None:  # a job due later (e.g. when an approval request expires)
                job.run_after = run_after
            session.add(job)
            try:
                await session.commit()
                created = True
            except IntegrityError:
                await session.rollback()
                created = False
            existing = await session.scalar(select(Job).where(Job.idempotency_key == idempotency_key))
            if existing is None:
                raise Conflict(_("That request is being handled; try again in a moment."))
            if existing.kind != kind or existing.organisation_id != organisation_id:
                raise Conflict(_("That request id belongs to something else."))
        if created:
            self._wake.set()
        return _view(existing), created

    async def depth(self) -> JobQueueDepth:
        """For monitoring (/metrics): a runner that stopped claiming shows as waiting jobs growing older."""
        now = utcnow()
        async with self._sessions() as session:
            waiting, oldest = (
                await session.execute(
                    select(func.count(), func.min(Job.run_after)).where(Job.status == PENDING, Job.run_after <= now)
                )
            ).one()
            running = await session.scalar(select(func.count()).select_from(Job).where(Job.status == RUNNING))
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        return JobQueueDepth(int(waiting or 0), int(running or 0), max(0.0, age))

    async def get(self, job_id: int) -> JobView | None:
        async with self._sessions() as session:
            job = await session.get(Job, job_id)
            return _view(job) if job is not None else None

    async def _claim(self) -> Job | None:
        now = utcnow()
        claimable = or_(
            and_(Job.status == PENDING, Job.run_after <= now),
            and_(Job.status == RUNNING, Job.lease_expires_at < now),
        )
        async with self._sessions() as session:
            candidates = list(await session.scalars(select(Job.id).where(claimable).order_by(Job.id).limit(10)))
            for job_id in candidates:
                # Compare-and-set: of several runners only one sees rowcount 1.
                result = await session.execute(
                    update(Job)
                    .where(Job.id == job_id, claimable)
                    .values(
                        status=RUNNING,
                        lease_owner=self.owner,
                        lease_expires_at=now + self._lease,
                        attempts=Job.attempts + 1,
                        updated_at=now,
                    )
                    .execution_options(synchronize_session=False)
                )
                await session.commit()
                if result.rowcount == 1:  # type: ignore[attr-defined]
                    return await session.get(Job, job_id, populate_existing=True)
        return None

    async def _holding_lease(self, job_id: int, work: Awaitable[R]) -> R:
        """Run a job's handler while its lease is extended every third of it: a long job (a warnings
        pass over many organisations) is not claimed by a second runner while the first is at it."""
        keeper = asyncio.create_task(self._keep_lease(job_id), name=f"job-{job_id}-lease")
        try:
            return await work
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_lease(self, job_id: int) -> None:
        interval = max(0.05, self._lease.total_seconds() / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._sessions() as session:
                    result = await session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.lease_owner == self.owner, Job.status == RUNNING)
                        .values(lease_expires_at=utcnow() + self._lease)
                        .execution_options(synchronize_session=False)
                    )
                    await session.commit()
            except Exception:  # the next try may get through; the lease lasts two more of these
                log.exception("job %s: could not extend its lease", job_id)
                continue
            if result.rowcount != 1:  # type: ignore[attr-defined]
                log.warning("job %s: lease lost while running; another runner may run it", job_id)
                return

    async def _finish(self, job_id: int, **values: Any) -> JobView | None:
        async with self._sessions() as session:
            result = await session.execute(
                update(Job)
                .where(Job.id == job_id, Job.lease_owner == self.owner, Job.status == RUNNING)
                .values(updated_at=utcnow(), **values)
                .execution_options(synchronize_session=False)
            )
            await session.commit()
            if result.rowcount != 1:  # type: ignore[attr-defined]
                log.warning("job %s: lease lost before finishing; another runner owns it", job_id)
                return None
            job = await session.get(Job, job_id, populate_existing=True)
            return _view(job) if job is not None else None

    async def _run(self, job: Job) -> None:
        view = _view(job)
        handler = self._handlers.get(job.kind)
        reader = await self._reading_of(view)
        with correlation_scope(f"job-{job.id}"), reading(reader.locale, reader.timezone):
            if handler is None:
                log.error("job %s: no handler for kind %s", job.id, job.kind)
                return
            try:
                result = await self._holding_lease(job.id, handler(view))
            except DomainError as error:
                done = await self._finish(job.id, status=FAILED, error_message=error.message, finished_at=utcnow())
            except Exception:
                log.exception("job %s (%s) failed on attempt %s", job.id, job.kind, job.attempts)
                if job.attempts < job.max_attempts:
                    backoff = timedelta(seconds=min(300, 2**job.attempts))
                    await self._finish(job.id, status=PENDING, run_after=utcnow() + backoff)
                    return
                done = await self._finish(job.id, status=FAILED, error_message=_(GENERIC_FAILURE), finished_at=utcnow())
                await self._alerts.raise_alert(
                    "job_failed",
                    f"Job #{job.id} ({job.kind}) failed {job.attempts} times; see the logs.",  # for the operator
                    dedup_key=f"job_failed:{job.id}",
                    severity="error",
                    organisation_id=job.organisation_id,
                )
            else:
                done = await self._finish(job.id, status=SUCCEEDED, result=dict(result), finished_at=utcnow())
            if done is not None:
                await self._notify(done)

    async def _notify(self, job: JobView) -> None:
        if self._notifier is None or job.notify_conversation_id is None:
            await self._mark_notified(job.id)
            return
        try:
            reader = await self._reading_of(job)
            with reading(reader.locale, reader.timezone):
                await self._notifier(job)
        except Exception:
            log.exception("job %s: could not tell the requester; will try again", job.id)
            async with self._sessions() as session:
                await session.execute(update(Job).where(Job.id == job.id).values(updated_at=utcnow()))
                await session.commit()
            return
        await self._mark_notified(job.id)

    async def _mark_notified(self, job_id: int) -> None:
        async with self._sessions() as session:
            await session.execute(update(Job).where(Job.id == job_id).values(notified_at=utcnow()))
            await session.commit()

    async def _renotify(self) -> None:
        """Finished jobs whose requester was never told (a crash or a failed send)."""
        now = utcnow()
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(Job)
                    .where(
                        Job.status.in_(FINISHED),
                        Job.notified_at.is_(None),
                        Job.updated_at <= now - RENOTIFY_AFTER,
                        Job.finished_at >= now - RENOTIFY_FOR,
                    )
                    .order_by(Job.id)
                    .limit(20)
                )
            )
        for job in rows:
            await self._notify(_view(job))

    async def run_pending(self, *, limit: int = 50) -> int:
        """Claim and run ready jobs until none is left (or `limit`); returns how many ran."""
        ran = 0
        while ran < limit:
            job = await self._claim()
            if job is None:
                break
            await self._run(job)
            ran += 1
        await self._renotify()
        return ran

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_pending()
            except Exception:
                log.exception("job runner pass failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._poll_interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="job-runner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
