"""Keeping one process useful past its capacity: a bound on the turns it runs at once, and a measure
of how far behind its event loop is.

Past its capacity an event loop that takes on every request gets slower for all of them at once: each
turn waits behind all the others, replies miss the channel's window, and the channel's retries add
more load. `TurnAdmission` bounds the turns a process takes on; a request beyond the bound is answered
at once with 503 and `Retry-After` before any work is done (no token validated, no state read, no
activity receipt taken), so the channel's retry of it is taken on like a first delivery.

Two bounds, because a turn spends most of its life waiting for remote services, not computing: a
reply POSTed to Teams takes ~100 ms to be answered, a Partner Center call far longer, a turn's own work
~15 ms of CPU. Turns *working* (MAX_WORKING_TURNS) are those not waiting for a remote service: they
are what the CPU queues, so their number sets how long an admitted turn waits for its share of it.
Turns *in flight* (MAX_CONCURRENT_TURNS) are all of them, waiting or not: a ceiling on memory and
connections. A turn's `TurnTicket` is its context's remote waiter (services/remote_waits.py): the
connector clients' request tracing (bot/connector_clients.py) and the Partner Center transport mark
it waiting while a request is out.

`LoopLagMonitor` wakes every `interval` seconds and records how late it woke: a loop with a backlog
of ready work wakes its timers late. The delayed "typing…" indicator is skipped while the loop lags,
since it would be one more request to the channel exactly when the process is behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from services.i18n import ngettext
from services.remote_waits import serve_as

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
SHED_LOG_EVERY_SECONDS = 10.0


class TurnTicket:
    """One admitted turn: in flight until it leaves; working unless a request to a remote service is out
    (services/remote_waits.py)."""

    __slots__ = ("admission", "remote_calls", "left")

    def __init__(self, admission: TurnAdmission) -> None:
        self.admission = admission
        self.remote_calls = 0  # requests to remote services this turn has out now
        self.left = False

    def remote_call_started(self) -> None:
        if self.left:  # a task the turn started, calling after the turn ended
            return
        self.remote_calls += 1
        if self.remote_calls == 1:
            self.admission.working -= 1

    def remote_call_ended(self) -> None:
        if self.left or self.remote_calls == 0:
            return
        self.remote_calls -= 1
        if self.remote_calls == 0:
            self.admission.working += 1


class TurnAdmission:
    """At most `limit` turns in flight, of which at most `working_limit` working (not waiting for a remote
    service); `try_enter()` gives a ticket when one more may start, None when it may not."""

    def __init__(self, limit: int, working_limit: int | None = None) -> None:
        working_limit = limit if working_limit is None else working_limit
        if limit < 1 or working_limit < 1:
            raise ValueError("the bounds on concurrent turns must be at least 1")
        self.limit = limit
        self.working_limit = min(working_limit, limit)
        self.in_flight = 0
        self.working = 0
        self.shed = 0  # requests refused since start
        self._shed_since_log = 0
        self._last_log = -SHED_LOG_EVERY_SECONDS

    def try_enter(self) -> TurnTicket | None:
        """A ticket for one more turn, made this context's remote waiter; None (and counted as shed) when
        either bound is reached."""
        if self.in_flight >= self.limit or self.working >= self.working_limit:
            self.shed += 1
            self._note_shed()
            return None
        self.in_flight += 1
        self.working += 1
        ticket = TurnTicket(self)
        serve_as(ticket)
        return ticket

    def leave(self, ticket: TurnTicket) -> None:
        if ticket.left:
            return
        ticket.left = True
        self.in_flight -= 1
        if ticket.remote_calls == 0:
            self.working -= 1

    def _note_shed(self) -> None:
        """One warning per SHED_LOG_EVERY_SECONDS at most: a line per refused request would add work
        exactly when there is too much."""
        self._shed_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= SHED_LOG_EVERY_SECONDS:
            log.warning(
                "overloaded: %s answered 503 (Retry-After %d s) since the last notice; %d turns in "
                "flight (MAX_CONCURRENT_TURNS=%d), %d working (MAX_WORKING_TURNS=%d)",
                ngettext("{n} request", "{n} requests", self._shed_since_log),
                RETRY_AFTER_SECONDS,
                self.in_flight,
                self.limit,
                self.working,
                self.working_limit,
            )
            self._shed_since_log = 0
            self._last_log = now


class LoopLag(Protocol):
    def lagging(self) -> bool:
        """True while the event loop runs its work later than `threshold` behind schedule."""
        ...


class LoopLagMonitor:
    """Measures the event loop's lag: how late a timer of `interval` seconds fires.

    `lagging()` is true when the last wake-up was more than `threshold` late, or when the next one is
    already overdue by more than that (the loop is behind right now, before the monitor can wake)."""

    def __init__(self, threshold: float, interval: float = 0.05) -> None:
        self.threshold = threshold
        self.interval = interval
        self.last_lag = 0.0
        self._due: float | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag-monitor")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            self.last_lag = max(0.0, loop.time() - self._due)

    @property
    def measuring(self) -> bool:
        """True once the monitor has set its first timer."""
        return self._due is not None

    def current_lag(self) -> float:
        """Seconds behind: the last wake-up's lateness, or how overdue the next one already is."""
        if self._due is None:
            return self.last_lag
        overdue = asyncio.get_running_loop().time() - self._due
        return max(self.last_lag, overdue)

    def lagging(self) -> bool:
        return self.current_lag() > self.threshold
