"""Telling the turn being served when it waits for a remote service (Teams' connector, Partner
Center, Microsoft Graph) rather than working.

A process bounds the turns *working* at once (bot/overload.py): a turn waiting ~100 ms for Teams to
take a reply, or a second for Partner Center, uses no CPU, and counting it would refuse turns while
the CPU idles. The admitted turn's waiter is in the context of the code serving it (a context
variable, so tasks the turn starts carry it too); the code that calls a remote service wraps the call
in `remote_call()`. Outside a turn (start-up, jobs, the CLI) there is no waiter and this does nothing.

A call whose answer the turn goes on to work with (Partner Center) counts as work for its first
`still_working_for` seconds: a quick answer brings the turn straight back to the CPU with more to do,
and admitting another turn in its place only makes both slower; a slow one stops holding a place the
CPU could use. A reply posted to Teams waits from the start: the turn has done its work.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Protocol


class RemoteWaiter(Protocol):
    def remote_call_started(self) -> None: ...

    def remote_call_ended(self) -> None: ...


_CURRENT: contextvars.ContextVar[RemoteWaiter | None] = contextvars.ContextVar("remote_waiter", default=None)


def serve_as(waiter: RemoteWaiter | None) -> None:
    """From here on, this context (and the tasks it starts) waits on remote calls as `waiter` (None: as no
    turn, e.g. a task that calls beside the turn's work rather than instead of it)."""
    _CURRENT.set(waiter)


def current_waiter() -> RemoteWaiter | None:
    return _CURRENT.get()


@contextlib.contextmanager
def remote_call(*, still_working_for: float = 0.0) -> Iterator[None]:
    """Around one request to a remote service, for whichever turn this code serves; the turn counts as
    waiting once the call has been out `still_working_for` seconds (at once by default)."""
    waiter = _CURRENT.get()
    if waiter is None:
        yield
        return
    if still_working_for <= 0:
        waiter.remote_call_started()
        try:
            yield
        finally:
            waiter.remote_call_ended()
        return
    waiting = False

    def now_waiting() -> None:
        nonlocal waiting
        waiting = True
        waiter.remote_call_started()

    timer = asyncio.get_running_loop().call_later(still_working_for, now_waiting)
    try:
        yield
    finally:
        timer.cancel()
        if waiting:
            waiter.remote_call_ended()
