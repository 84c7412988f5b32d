"""Past capacity: the bound on turns in flight (503 + Retry-After before any work, and the retry of a
refused activity is taken on), and no typing indicator while the event loop lags."""

from __future__ import annotations

import asyncio
import contextvars
import time

import pytest
from microsoft_agents.hosting.dialogs import WaterfallStepContext
from sqlalchemy import func, select

from app import ADMISSION
from bot.overload import LoopLagMonitor, TurnAdmission, TurnTicket
from dialogs.base import TaskDialog
from dialogs.catalogue import Task
from services.activity_receipts import receipt_key
from services.models import ActivityReceipt
from services.remote_waits import remote_call
from services.roles import Permission
from tests.conftest import message, runtime_of
from tests.fakes import said
from tests.scrape import scrape, value


async def _until(condition, what: str, limit: float = 10.0) -> None:
    """Poll `condition` (bounded): the tests wait for a state, never for a fixed time."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class _HeldDialog(TaskDialog):
    """Holds its turn until the test releases it: a turn in flight for as long as the test needs."""

    def __init__(self, release: asyncio.Event) -> None:
        super().__init__("held_dialog", [self.hold_step])
        self._release = release

    async def hold_step(self, step_context: WaterfallStepContext):
        await self._release.wait()
        await step_context.context.send_activity("Released.")
        return await step_context.end_dialog()


class _KeepingUp:
    """An event loop that is never behind, so the indicator is sent on a busy test machine too."""

    def lagging(self) -> bool:
        return False


def _held_tasks(release: asyncio.Event):
    def tasks(_services):
        return [Task("hold", "a held task", "tests only", _HeldDialog(release), Permission.READ_SUBSCRIPTIONS)]

    return tasks


async def _receipts(client, activity: dict) -> int:
    key = receipt_key(activity["channelId"], activity["conversation"]["id"], activity["id"])
    async with runtime_of(client).services.sessions() as session:
        return int(await session.scalar(select(func.count()).where(ActivityReceipt.key == key)) or 0)


async def test_a_turn_beyond_the_bound_gets_503_before_any_work_and_its_retry_is_processed(make_bot, connector):
    fake, url = connector
    release = asyncio.Event()
    client = await make_bot(tasks=_held_tasks(release), settings={"max_concurrent_turns": 2})
    admission = client.app[ADMISSION]
    held = [
        asyncio.create_task(
            client.post("/api/messages", json=message("hold", service_url=url, conversation_id=f"held-{n}"))
        )
        for n in range(2)
    ]
    await _until(lambda: admission.in_flight == 2, "two held turns in flight")

    refused = message("menu", service_url=url, conversation_id="refused-chat", activity_id="activity-refused")
    response = await client.post("/api/messages", json=refused)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert "busy" in (await response.json())["error"]
    assert admission.shed == 1
    assert await _receipts(client, refused) == 0  # nothing taken: its retry is no re-delivery
    assert fake.messages("refused-chat") == []

    release.set()
    assert [(await task).status for task in held] == [202, 202]
    assert admission.in_flight == 0

    retry = await client.post("/api/messages", json=refused)  # Teams sends the same activity again
    assert retry.status == 202
    await fake.wait_for(1, "refused-chat")
    assert "What would you like to do?" in said(fake.messages("refused-chat")[0])
    assert await _receipts(client, refused) == 1


async def test_refused_and_failed_requests_leave_no_turn_counted_in_flight(make_bot, connector):
    fake, url = connector
    client = await make_bot(settings={"max_concurrent_turns": 1})
    admission = client.app[ADMISSION]
    bad = await client.post("/api/messages", data=b"{not json", headers={"Content-Type": "application/json"})
    assert bad.status == 400
    assert admission.in_flight == 0
    good = await client.post("/api/messages", json=message("menu", service_url=url))
    assert good.status == 202
    assert admission.in_flight == 0 and admission.shed == 0


def test_the_bound_counts_turns_in_flight() -> None:
    admission = TurnAdmission(2)
    first, second = admission.try_enter(), admission.try_enter()
    assert first is not None and second is not None
    assert admission.try_enter() is None
    admission.leave(first)
    admission.leave(first)  # leaving twice frees one place, not two
    assert admission.try_enter() is not None
    assert admission.try_enter() is None
    assert (admission.in_flight, admission.shed) == (2, 2)
    with pytest.raises(ValueError):
        TurnAdmission(0)
    with pytest.raises(ValueError):
        TurnAdmission(4, 0)


def _enter_in_its_own_context(admission: TurnAdmission) -> tuple[TurnTicket | None, contextvars.Context]:
    """A turn's admission as a request handler makes it: in the request's own context."""
    context = contextvars.copy_context()
    return context.run(admission.try_enter), context


def test_a_turn_waiting_for_a_remote_service_does_not_count_as_working() -> None:
    admission = TurnAdmission(limit=3, working_limit=1)
    first, first_context = _enter_in_its_own_context(admission)
    assert first is not None and admission.working == 1
    assert _enter_in_its_own_context(admission)[0] is None  # one working already

    waiting = remote_call()
    first_context.run(waiting.__enter__)  # the first turn's reply is out to Teams
    assert (admission.in_flight, admission.working) == (1, 0)
    second, _ = _enter_in_its_own_context(admission)
    assert second is not None and (admission.in_flight, admission.working) == (2, 1)

    # Teams answered: the first turn works again, past the bound for a moment.
    first_context.run(waiting.__exit__, None, None, None)
    assert admission.working == 2
    assert _enter_in_its_own_context(admission)[0] is None
    admission.leave(first)
    admission.leave(second)
    assert (admission.in_flight, admission.working) == (0, 0)


def test_a_call_after_its_turn_left_changes_no_count() -> None:
    """A task the turn started may still send after the turn ended; the turn is no longer counted."""
    admission = TurnAdmission(limit=2, working_limit=1)
    ticket, context = _enter_in_its_own_context(admission)
    assert ticket is not None
    admission.leave(ticket)
    waiting = remote_call()
    context.run(waiting.__enter__)
    assert (admission.in_flight, admission.working) == (0, 0)
    context.run(waiting.__exit__, None, None, None)
    assert (admission.in_flight, admission.working) == (0, 0)


async def test_a_turn_waiting_for_teams_to_take_its_reply_leaves_room_for_another(make_bot, connector):
    fake, url = connector
    fake.hold_answers = asyncio.Event()
    client = await make_bot(settings={"max_concurrent_turns": 4, "max_working_turns": 1})
    admission = client.app[ADMISSION]

    def menu_in(chat: str):
        activity = message("menu", service_url=url, conversation_id=chat)
        return asyncio.create_task(client.post("/api/messages", json=activity))

    first = menu_in("c1")
    await fake.wait_for(1, "c1")  # its reply is at Teams, not answered yet
    assert (admission.in_flight, admission.working) == (1, 0)

    second = menu_in("c2")
    await fake.wait_for(1, "c2")  # admitted, not refused: the first turn was only waiting
    fake.hold_answers.set()
    assert [(await first).status, (await second).status] == [202, 202]
    assert (admission.in_flight, admission.working, admission.shed) == (0, 0, 0)


# ---- event-loop lag -------------------------------------------------------------------------
def _keep_the_loop_busy(seconds: float) -> None:
    """The simulated lag: a stretch of CPU work that keeps the event loop from its timers."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


async def test_the_monitor_sees_a_blocked_loop_and_its_recovery() -> None:
    monitor = LoopLagMonitor(threshold=0.1, interval=0.02)
    monitor.start()
    try:
        await _until(lambda: monitor.measuring, "the monitor's first timer")
        _keep_the_loop_busy(0.3)
        assert monitor.lagging()  # overdue by at least 0.3 - 0.02 s, before the monitor can wake
        await _until(lambda: not monitor.lagging(), "the loop to catch up")
    finally:
        await monitor.stop()


async def test_the_app_runs_a_lag_monitor_with_the_configured_threshold(make_bot) -> None:
    client = await make_bot(settings={"typing_indicator_max_loop_lag_seconds": 0.2})
    monitor = runtime_of(client).loop_lag
    assert isinstance(monitor, LoopLagMonitor) and monitor.threshold == 0.2
    await _until(lambda: monitor.measuring, "the monitor to run")
    _keep_the_loop_busy(0.4)
    assert monitor.lagging()


class _Lagging:
    """A loop that is always behind (the simulated overload)."""

    def lagging(self) -> bool:
        return True


class _SlowDialog(TaskDialog):
    def __init__(self) -> None:
        super().__init__("slow_dialog", [self.work_step])

    async def work_step(self, step_context: WaterfallStepContext):
        await asyncio.sleep(0.3)  # longer than the typing delay: the indicator's timer fires first
        await step_context.context.send_activity("Done.")
        return await step_context.end_dialog()


def _slow_tasks(_services):
    return [Task("slow", "a slow task", "tests only", _SlowDialog(), Permission.READ_SUBSCRIPTIONS)]


async def test_a_slow_turn_sends_no_typing_while_the_loop_lags(make_bot, connector):
    fake, url = connector
    client = await make_bot(tasks=_slow_tasks, loop_lag=_Lagging(), settings={"typing_indicator_delay_seconds": 0.05})
    response = await client.post("/api/messages", json=message("slow", service_url=url))
    assert response.status == 202
    await fake.wait_for(1)
    assert "Done." in said(fake.messages()[0])
    assert [item.activity["type"] for item in fake.received] == ["message"]


async def test_a_shed_turn_is_counted_in_the_metrics_with_the_turns_in_flight(make_bot, connector):
    fake, url = connector
    release = asyncio.Event()
    client = await make_bot(tasks=_held_tasks(release), settings={"max_concurrent_turns": 1})
    admission = client.app[ADMISSION]
    held = asyncio.create_task(client.post("/api/messages", json=message("hold", service_url=url)))
    await _until(lambda: admission.in_flight == 1, "the held turn in flight")
    refused = await client.post("/api/messages", json=message("menu", service_url=url, conversation_id="other"))
    assert refused.status == 503

    samples = await scrape(client)
    assert value(samples, "cspbot_turns_shed_total") == 1
    assert (value(samples, "cspbot_turns_in_flight"), value(samples, "cspbot_turns_limit")) == (1, 1)
    assert (value(samples, "cspbot_turns_working"), value(samples, "cspbot_turns_working_limit")) == (1, 1)
    assert value(samples, "cspbot_turns_total", kind="message", status="503") == 0  # shed, not a turn
    release.set()
    assert (await held).status == 202
    samples = await scrape(client)
    assert value(samples, "cspbot_turns_total", kind="message", status="202") == 1
    assert value(samples, "cspbot_turns_in_flight") == 0


async def test_a_typing_indicator_out_while_the_turn_works_leaves_it_counted_as_working(make_bot, connector):
    fake, url = connector
    release = asyncio.Event()
    fake.hold_answers = asyncio.Event()  # the indicator's POST stays out
    client = await make_bot(
        tasks=_held_tasks(release),
        loop_lag=_KeepingUp(),
        settings={"typing_indicator_delay_seconds": 0.01, "max_working_turns": 1},
    )
    admission = client.app[ADMISSION]
    held = asyncio.create_task(client.post("/api/messages", json=message("hold", service_url=url)))
    await _until(lambda: any(item.activity.get("type") == "typing" for item in fake.received), "the typing indicator")
    assert (admission.in_flight, admission.working) == (1, 1)
    other = message("menu", service_url=url, conversation_id="other")
    refused = await asyncio.wait_for(client.post("/api/messages", json=other), 10)  # admitted, it would hang
    assert refused.status == 503
    fake.hold_answers.set()
    release.set()
    assert (await held).status == 202
