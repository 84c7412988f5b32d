"""Turn benchmark: our bot against the Agents SDK's minimal echo bot and a bare aiohttp handler.

Run from the repository root:

    .venv/bin/python bench/turns.py            # full run (about 2 minutes)
    .venv/bin/python bench/turns.py --quick    # short run (under a minute)

Each server runs in its own subprocess (this file with `--serve NAME --port N --connector URL`), so its CPU
time can be read alone from /proc/<pid>/stat. All listen on 127.0.0.1 only and all run unauthenticated (no
Authorization header). A fake Bot Framework connector inside this (the load-generator) process records every
activity the servers send, with its arrival time. The load is open-loop: turns go out on a fixed schedule at
R turns/s across C conversations, whatever the server does. A turn's latency is the time from sending its POST
to its reply arriving at the connector, matched by the reply's `replyToId` (the inbound activity id).

The machine is shared and noisy, so the measured time is split into rounds and the servers take turns
(bare, echo, ours, then rotated): CPU ratios compare servers measured close together in time.

This program prints figures. It asserts nothing about timings: the PASS/MISS lines are only printed.
See docs/benchmarks.md for how to read them.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import cProfile
import datetime
import gc
import itertools
import json
import math
import os
import platform
import pstats
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

THIS_FILE = os.path.abspath(__file__)
ROOT = Path(THIS_FILE).parent.parent
LOOPBACK = "127.0.0.1"
# "ours-frozen" is an experiment, not run by default: our bot with gc.freeze() after start-up.
SERVERS = ("bare", "echo", "ours", "ours-frozen")
DEFAULT_SERVERS = ("bare", "echo", "ours")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
MENU_MARKER = b"What would you like to do?"  # the menu card's heading (cards/common.py build_menu_card)
# The seeded demo admin of the unauthenticated local mode (see services/seed.py and tests/conftest.py).
PLAYGROUND_TENANT_ID = "00000000-0000-0000-0000-0000000000001"
ADMIN_USER_ID = "user-id-0"
ADMIN_OBJECT_ID = "00000000-0000-0000-0000-0000000000020"
MAX_TURNS_PER_PHASE = 100_000
OVERLOADED_P99_MS = 1000.0  # the rate sweep stops after a step this slow (or with lost replies)


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ==== the servers (run as `--serve NAME` in their own process) ============================================


def _require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"refusing a non-loopback connector URL: {url}")


def _bare_app(connector_url: str) -> web.Application:
    """The floor: parse the JSON, POST one reply to the connector, answer 202."""
    app = web.Application()
    sessions: list[ClientSession] = []
    base = connector_url.rstrip("/")

    async def session_ctx(_app: web.Application) -> Any:
        sessions.append(ClientSession(connector=TCPConnector(limit=100)))
        yield
        await sessions[0].close()

    async def handle(request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("serviceUrl") or "").rstrip("/") != base:
            return web.json_response({"error": "unexpected serviceUrl"}, status=400)
        conversation = body["conversation"]["id"]
        activity_id = body["id"]
        reply = {
            "type": "message",
            "text": f"Echo: {body.get('text', '')}",
            "replyToId": activity_id,
            "conversation": {"id": conversation},
            "from": body.get("recipient"),
            "recipient": body.get("from"),
        }
        url = f"{base}/v3/conversations/{quote(conversation, safe='')}/activities/{quote(activity_id, safe='')}"
        async with sessions[0].post(url, json=reply) as response:
            await response.read()
        return web.Response(status=202)

    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/api/messages", handle)
    return app


def _echo_app() -> web.Application:
    """The Agents SDK's minimal echo bot ("Base wiring" in the SDK notes): CloudAdapter with an anonymous
    MsalConnectionManager, an ActivityHandler, a ConversationState over MemoryStorage created per turn.
    The turn counter makes the state a real read and write, as in any bot with state."""
    from microsoft_agents.authentication.msal import MsalConnectionManager
    from microsoft_agents.hosting.aiohttp import CloudAdapter
    from microsoft_agents.hosting.core import (
        ActivityHandler,
        ConversationState,
        MemoryStorage,
        MessageFactory,
        TurnContext,
    )

    storage = MemoryStorage()
    adapter = CloudAdapter(
        connection_manager=MsalConnectionManager(
            CONNECTIONS={"SERVICE_CONNECTION": {"SETTINGS": {"ANONYMOUS_ALLOWED": True}}}
        )
    )

    class EchoBot(ActivityHandler):
        async def on_turn(self, turn_context: TurnContext) -> None:  # type: ignore[override]
            state = ConversationState(storage)
            turn_context.turn_state["conversation_state"] = state
            await super().on_turn(turn_context)
            await state.save(turn_context)

        async def on_message_activity(self, turn_context: TurnContext) -> None:  # type: ignore[override]
            state: ConversationState = turn_context.turn_state["conversation_state"]
            counter = state.create_property("turns")
            await counter.set(turn_context, (await counter.get(turn_context, 0)) + 1)
            await turn_context.send_activity(MessageFactory.text(f"Echo: {turn_context.activity.text}"))

    bot = EchoBot()

    async def handle(request: web.Request) -> web.StreamResponse:
        response = await adapter.process(request, bot)
        return response if response is not None else web.Response(status=202)

    app = web.Application()
    app.router.add_post("/api/messages", handle)
    return app


def _our_app(workdir: Path) -> web.Application:
    """Our bot exactly as `python app.py` builds it (job runner included), on a fresh SQLite file."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from app import create_app
    from services.logging_context import configure_logging
    from services.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite+aiosqlite:///{workdir / 'bench.sqlite3'}",
        microsoft_app_id="",
        host=LOOPBACK,
        seed_demo_organisation=True,
        log_level="INFO",
        job_poll_interval_seconds=1.0,
    )
    configure_logging(settings.log_level)  # as app.main() does; stderr goes to the server's log file
    return create_app(settings)


class GcPauses:
    """Pauses of the garbage collector per generation (gc.callbacks), since the last reset."""

    def __init__(self) -> None:
        self._started = 0.0
        self.reset()

    def reset(self) -> None:
        self.count = [0, 0, 0]
        self.total = [0.0, 0.0, 0.0]
        self.longest = [0.0, 0.0, 0.0]

    def callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        generation = info["generation"]
        pause = (time.perf_counter() - self._started) * 1000
        self.count[generation] += 1
        self.total[generation] += pause
        self.longest[generation] = max(self.longest[generation], pause)

    def summary(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "total_ms": self.total,
            "longest_ms": self.longest,
            "objects": len(gc.get_objects()),
        }


async def serve(name: str, port: int, connector_url: str, profile_file: str | None) -> None:
    _require_loopback(connector_url)
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        if name == "bare":
            app = _bare_app(connector_url)
        elif name == "echo":
            app = _echo_app()
        else:
            app = _our_app(workdir)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()  # runs the app's start-up (for ours: migrations, seeding, services)
        site = web.TCPSite(runner, LOOPBACK, port)
        await site.start()
        if name == "ours-frozen":  # the experiment: what gc.freeze() after start-up would change
            gc.collect()
            gc.freeze()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        # The load generator brackets each measured window with SIGUSR1 (start) and SIGUSR2 (end): the
        # garbage collector's pauses are counted over it (reported on stdout), and the profiler runs in it,
        # measuring this thread's CPU time (waiting in epoll is not a cost).
        profiler = cProfile.Profile(time.thread_time) if profile_file else None
        pauses = GcPauses()
        gc.callbacks.append(pauses.callback)

        def window_start() -> None:
            pauses.reset()
            if profiler is not None:
                profiler.enable()

        def window_end() -> None:
            if profiler is not None:
                profiler.disable()
            sys.stdout.write(f"GC {json.dumps(pauses.summary())}\n")
            sys.stdout.flush()

        loop.add_signal_handler(signal.SIGUSR1, window_start)
        loop.add_signal_handler(signal.SIGUSR2, window_end)
        sys.stdout.write(f"READY {runner.addresses[0][1]}\n")
        sys.stdout.flush()
        parent = os.getppid()
        while not stop.is_set():  # also stop if the load generator died without telling us
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if os.getppid() != parent:
                break
        if profiler is not None and profile_file:
            profiler.disable()
            profiler.dump_stats(profile_file)
        await runner.cleanup()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ==== the load generator's side ==========================================================================


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all its threads, also finished ones), from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def main_thread_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/task/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """Non-idle CPU time of the whole machine (all CPUs), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # all but idle and iowait


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


_LIVE_CHILDREN: set[int] = set()


@atexit.register
def _kill_leftovers() -> None:
    for pid in list(_LIVE_CHILDREN):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class ServerProcess:
    """One `--serve` subprocess; always stopped by `stop()` (and killed at exit if it is still alive)."""

    def __init__(self, name: str, connector_url: str, log_dir: Path, profile_file: str | None = None) -> None:
        self.name = name
        self.connector_url = connector_url
        self.log_path = log_dir / f"{name}.log"
        self.profile_file = profile_file
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api/messages"

    @property
    def expect(self) -> str:
        return "card" if self.name.startswith("ours") else "echo"

    async def start(self) -> None:
        command = [sys.executable, THIS_FILE, "--serve", self.name, "--port", "0", "--connector", self.connector_url]
        if self.profile_file:
            command += ["--profile", self.profile_file]
        log = self.log_path.open("wb")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, cwd=ROOT
            )
        finally:
            log.close()
        _LIVE_CHILDREN.add(self.process.pid)
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), 120)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY "):
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {self.name} server did not start; its log ends with:\n{tail}")
        self.port = int(line.split()[1])

    def window_start(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGUSR1)

    async def window_end(self) -> dict[str, Any]:
        """The server's garbage-collector pauses over the window (its profiler stops too)."""
        if self.process is None or self.process.returncode is not None or self.process.stdout is None:
            return {}
        self.process.send_signal(signal.SIGUSR2)
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), 10)
        except TimeoutError:
            return {}
        return json.loads(line[3:]) if line.startswith(b"GC ") else {}

    async def stop(self) -> None:
        process = self.process
        if process is None:
            return
        try:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()
        finally:
            _LIVE_CHILDREN.discard(process.pid)


class Outstanding:
    """Counts a phase's turns still waiting for their reply (or a failed send) and wakes the waiter."""

    def __init__(self) -> None:
        self.count = 0
        self.done = asyncio.Event()
        self.done.set()

    def add(self) -> None:
        self.count += 1
        self.done.clear()

    def resolve(self) -> None:
        self.count -= 1
        if self.count <= 0:
            self.done.set()


@dataclass
class Turn:
    id: str
    conversation: str
    text: str
    expect: str  # "echo": the reply text must be "Echo: <text>"; "card": the menu card
    scheduled: float
    sent: float = 0.0
    status: int | None = None
    error: str | None = None
    reply_at: float | None = None
    typing: int = 0
    extra_replies: int = 0
    crossed: bool = False
    bad: bool = False
    outstanding: Outstanding | None = None

    def settle(self) -> None:
        """The first reply (or a failed send): the phase stops waiting for this turn."""
        if self.outstanding is not None:
            self.outstanding.resolve()
            self.outstanding = None


@dataclass
class Connector:
    """The fake Bot Framework connector: records each activity the servers send, when it arrives."""

    turns: dict[str, Turn] = field(default_factory=dict)
    unmatched: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._send)
        app.router.add_get("/v3/conversations/{conversation}/members/{member}", self._member)
        return app

    async def _send(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        raw = await request.read()
        body = json.loads(raw)
        reply_to = body.get("replyToId") or request.match_info.get("activity")
        turn = self.turns.get(reply_to or "")
        if turn is None:
            self.unmatched += 1
        elif body.get("type") == "typing":
            turn.typing += 1
        elif turn.reply_at is not None:
            turn.extra_replies += 1
        else:
            turn.reply_at = arrived
            turn.settle()
            in_body = (body.get("conversation") or {}).get("id")
            turn.crossed = request.match_info["conversation"] != turn.conversation or in_body not in (
                None,
                turn.conversation,
            )
            if turn.expect == "card":
                is_card = any(item.get("contentType") == ADAPTIVE_CARD for item in body.get("attachments") or [])
                turn.bad = not (is_card and MENU_MARKER in raw and b"Contoso" in raw)
            else:
                turn.bad = body.get("text") != f"Echo: {turn.text}"
        return web.json_response({"id": f"reply-{next(self._ids)}"})

    async def _member(self, _request: web.Request) -> web.Response:
        return web.json_response({"error": {"code": "MemberNotFoundInConversation"}}, status=404)


def make_activity(turn: Turn, service_url: str) -> dict[str, Any]:
    """A Teams-shaped personal-chat message from the seeded demo admin (as tests/conftest.py builds it)."""
    return {
        "type": "message",
        "id": turn.id,
        "channelId": "msteams",
        "serviceUrl": service_url,
        "from": {"id": ADMIN_USER_ID, "name": "Alex Wilber", "aadObjectId": ADMIN_OBJECT_ID},
        "recipient": {"id": "28:bot-id", "name": "CSP Bot"},
        "conversation": {"id": turn.conversation, "conversationType": "personal"},
        "channelData": {"tenant": {"id": PLAYGROUND_TENANT_ID}},
        "locale": "en-US",
        "text": turn.text,
        "textFormat": "plain",
    }


@dataclass
class Result:
    """One server's measurements, over one window or merged over several (the rounds)."""

    server: str
    label: str
    rate: float
    turns: list[Turn] = field(default_factory=list)
    cpu_seconds: float = 0.0
    main_thread_cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    generator_cpu_seconds: float = 0.0
    other_cpu_seconds: float = 0.0
    send_lags_ms: list[float] = field(default_factory=list)
    gc: dict[str, Any] = field(default_factory=dict)
    rounds: list[Result] = field(default_factory=list)

    def add(self, window: Result) -> None:
        self.turns += window.turns
        self.cpu_seconds += window.cpu_seconds
        self.main_thread_cpu_seconds += window.main_thread_cpu_seconds
        self.wall_seconds += window.wall_seconds
        self.generator_cpu_seconds += window.generator_cpu_seconds
        self.other_cpu_seconds += window.other_cpu_seconds
        self.send_lags_ms += window.send_lags_ms
        if window.gc:
            if not self.gc:
                self.gc = {"count": [0, 0, 0], "total_ms": [0.0, 0.0, 0.0], "longest_ms": [0.0, 0.0, 0.0]}
            for generation in range(3):
                self.gc["count"][generation] += window.gc["count"][generation]
                self.gc["total_ms"][generation] += window.gc["total_ms"][generation]
                self.gc["longest_ms"][generation] = max(
                    self.gc["longest_ms"][generation], window.gc["longest_ms"][generation]
                )
            self.gc["objects"] = window.gc["objects"]
        self.rounds.append(window)

    @property
    def sent(self) -> int:
        return len(self.turns)

    @property
    def replies(self) -> int:
        return sum(1 for t in self.turns if t.reply_at is not None)

    @property
    def lost(self) -> int:
        return self.sent - self.replies

    @property
    def crossed(self) -> int:
        return sum(1 for t in self.turns if t.crossed)

    @property
    def bad(self) -> int:
        return sum(1 for t in self.turns if t.bad)

    @property
    def extra(self) -> int:
        return sum(t.extra_replies for t in self.turns)

    @property
    def typing(self) -> int:
        return sum(t.typing for t in self.turns)

    @property
    def http_errors(self) -> int:
        return sum(1 for t in self.turns if t.error is not None or (t.status is not None and t.status >= 300))

    @property
    def clean(self) -> bool:
        return not (self.lost or self.crossed or self.bad or self.extra or self.http_errors)

    def percentile(self, p: float) -> float:
        values = sorted((t.reply_at - t.sent) * 1000 for t in self.turns if t.reply_at is not None)
        return nearest_rank(values, p)

    @property
    def cpu_ms_per_turn(self) -> float:
        return self.cpu_seconds * 1000 / self.sent if self.sent else math.nan

    def share(self, seconds: float) -> float:
        """CPU seconds as a percentage of one core over the wall time."""
        return 100 * seconds / self.wall_seconds if self.wall_seconds else math.nan


def nearest_rank(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return math.nan
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


class LoadGenerator:
    def __init__(self, args: argparse.Namespace, connector: Connector, connector_url: str) -> None:
        self.args = args
        self.connector = connector
        self.connector_url = connector_url
        self.run_id = uuid.uuid4().hex[:8]
        self.sequence = itertools.count(1)

    async def window(
        self, server: ServerProcess, label: str, rate: float, duration: float, *, measured: bool = True
    ) -> Result:
        """Send round(rate * duration) turns open-loop, wait for their replies (at most --lost-after
        seconds after the last send), and return what happened, with the server's CPU time over it."""
        count = min(MAX_TURNS_PER_PHASE, max(1, round(rate * duration)))
        turns: list[Turn] = []
        outstanding = Outstanding()
        tasks: set[asyncio.Task[None]] = set()
        timeout = ClientTimeout(total=self.args.lost_after + 5)
        async with ClientSession(connector=TCPConnector(limit=self.args.pool), timeout=timeout) as session:
            if measured:
                server.window_start()
            cpu_before, main_before = proc_cpu_seconds(server.pid), main_thread_cpu_seconds(server.pid)
            machine_before, own_before = machine_busy_seconds(), own_cpu_seconds()
            start = time.perf_counter() + 0.05
            for k in range(count):
                scheduled = start + k / rate
                delay = scheduled - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                turn_id = f"{self.run_id}-{server.name}-{next(self.sequence)}"
                text = "menu" if server.expect == "card" else f"ping {turn_id}"
                conversation = f"bench-conv-{k % self.args.conversations:04d}"
                turn = Turn(turn_id, conversation, text, server.expect, scheduled, outstanding=outstanding)
                outstanding.add()
                self.connector.turns[turn_id] = turn
                turns.append(turn)
                task = asyncio.create_task(self._send(session, server.url, turn))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            deadline = time.perf_counter() + self.args.lost_after
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(outstanding.done.wait(), self.args.lost_after)
            if tasks:  # the HTTP responses (202) normally follow the replies by a moment
                await asyncio.wait(set(tasks), timeout=max(0.01, deadline - time.perf_counter()))
            wall = time.perf_counter() - start
            cpu_after, main_after = proc_cpu_seconds(server.pid), main_thread_cpu_seconds(server.pid)
            machine_after, own_after = machine_busy_seconds(), own_cpu_seconds()
            gc_pauses = await server.window_end() if measured else {}
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for turn in turns:  # late replies after the deadline no longer touch this window
            self.connector.turns.pop(turn.id, None)
        server_cpu, own_cpu = cpu_after - cpu_before, own_after - own_before
        return Result(
            server=server.name,
            label=label,
            rate=rate,
            turns=turns,
            cpu_seconds=server_cpu,
            main_thread_cpu_seconds=main_after - main_before,
            wall_seconds=wall,
            generator_cpu_seconds=own_cpu,
            other_cpu_seconds=max(0.0, machine_after - machine_before - server_cpu - own_cpu),
            send_lags_ms=[max(0.0, t.sent - t.scheduled) * 1000 for t in turns],
            gc=gc_pauses,
        )

    async def _send(self, session: ClientSession, url: str, turn: Turn) -> None:
        payload = json.dumps(make_activity(turn, self.connector_url)).encode()
        turn.sent = time.perf_counter()
        try:
            async with session.post(url, data=payload, headers={"Content-Type": "application/json"}) as response:
                turn.status = response.status
                await response.read()
            if response.status >= 300:
                turn.settle()  # no reply is coming
        except Exception as error:  # noqa: BLE001 - a refused or timed-out request is counted, never raised
            turn.error = type(error).__name__
            turn.settle()


async def wait_until_quiet(limit: float, threshold: float = 0.15) -> float:
    """Wait (at most `limit` seconds) until the rest of the machine uses under `threshold` of one core;
    returns the share it used in the last second."""
    waited = 0.0
    while True:
        busy, own = machine_busy_seconds(), own_cpu_seconds()
        await asyncio.sleep(1.0)
        other = (machine_busy_seconds() - busy) - (own_cpu_seconds() - own)
        if other < threshold or waited >= limit:
            return other
        waited += 1.0


# ==== reporting ==========================================================================================


def fmt(value: float, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table(headers: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))

    return [line(headers), "  ".join("-" * w for w in widths), *(line(row) for row in rows)]


RESULT_HEADERS = [
    "server", "rate/s", "sent", "replies", "lost", "crossed", "wrong", "extra", "http err", "typing",
    "p50 ms", "p99 ms", "max ms", "CPU ms/turn", "rounds min-max", "GC max ms", "srv CPU %", "gen CPU %", "other CPU %",
]  # fmt: skip


def result_row(result: Result) -> list[str]:
    per_round = [r.cpu_ms_per_turn for r in result.rounds if r.sent]
    spread = f"{min(per_round):.2f}-{max(per_round):.2f}" if len(per_round) > 1 else "-"
    return [
        result.server if result.label == "main" else f"{result.server} {result.label}",
        fmt(result.rate, 0),
        str(result.sent),
        str(result.replies),
        str(result.lost),
        str(result.crossed),
        str(result.bad),
        str(result.extra),
        str(result.http_errors),
        str(result.typing),
        fmt(result.percentile(50)),
        fmt(result.percentile(99)),
        fmt(result.percentile(100)),
        fmt(result.cpu_ms_per_turn, 2),
        spread,
        fmt(max(result.gc["longest_ms"]), 0) if result.gc else "-",
        fmt(result.share(result.cpu_seconds), 0),
        fmt(result.share(result.generator_cpu_seconds), 0),
        fmt(result.share(result.other_cpu_seconds), 0),
    ]


def machine_lines() -> list[str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    versions = []
    for package in ("aiohttp", "microsoft-agents-hosting-core", "SQLAlchemy", "aiosqlite", "pydantic"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{package} {metadata.version(package)}")
    return [
        f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}; code: {code_version()}",
        f"machine: {os.cpu_count()} CPUs ({len(os.sched_getaffinity(0))} usable), {model}; "
        f"Python {platform.python_version()}; {', '.join(versions)}",
    ]


def code_version() -> str:
    """The commit measured, and whether tracked files differ from it (read-only git calls)."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"commit {commit}" + (f" + {len(changed)} changed tracked files" if changed else "")


def _area(key: tuple[str, int, str]) -> str:
    """Which package or layer a profiled function belongs to (for the own-time breakdown)."""
    filename, _line, function = key
    if filename == "~":
        if "_queue.SimpleQueue" in function:
            return "aiosqlite queue (hand-off to its thread)"
        if "socket" in function or "epoll" in function or "select" in function:
            return "sockets and polling (syscalls)"
        if "greenlet" in function:
            return "greenlet (SQLAlchemy async bridge)"
        return "C built-ins (other)"
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if filename.startswith(str(ROOT) + "/"):
        return "project: " + filename[len(str(ROOT)) + 1 :].split("/", 1)[0]
    if "/python3." in filename:
        return "stdlib: " + filename.split("/python3.", 1)[1].split("/", 1)[-1]
    return filename


def _where(key: tuple[str, int, str]) -> str:
    filename, line, function = key
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    else:
        if "/python3." in filename:
            filename = filename.split("/python3.", 1)[1].split("/", 1)[-1]
    return f"{function} ({filename}:{line})" if line else function


def profile_lines(profile_file: str, turns: int, top: int = 20) -> list[str]:
    """Own CPU time (tottime) is what this reads: cumulative times are not reliable here, as cProfile
    follows neither coroutines nor SQLAlchemy's greenlets across their switches."""
    entries: dict[tuple[str, int, str], Any] = pstats.Stats(profile_file).stats  # type: ignore[attr-defined]
    per_turn = 1000 / max(1, turns)
    total = sum(entry[2] for entry in entries.values())
    areas: dict[str, float] = {}
    for key, entry in entries.items():
        areas[_area(key)] = areas.get(_area(key), 0.0) + entry[2]
    lines = [f"profiled main-thread CPU {total * per_turn:.2f} ms per turn; by area (own time, ms per turn):"]
    for area, own in sorted(areas.items(), key=lambda item: item[1], reverse=True)[:top]:
        lines.append(f"  {own * per_turn:7.3f}  {100 * own / total:5.1f}%  {area}")
    lines.append(f"top {top} functions by own time (ms per turn, calls per turn, the main caller):")
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:top]
    for key, (_cc, calls, own, _cumulative, callers) in ranked:
        caller = max(callers.items(), key=lambda item: item[1][2], default=None)
        via = f"  <- {_where(caller[0])}" if caller else ""
        lines.append(f"  {own * per_turn:7.3f}  {calls / max(1, turns):7.1f}  {_where(key)}{via}")
    return lines


# ==== the run =============================================================================================


@dataclass
class Outcome:
    results: dict[str, Result]
    sweep: list[Result]
    unmatched: int
    log_lines: dict[str, int]


async def run(args: argparse.Namespace) -> Outcome:
    for line in machine_lines():
        out(line)
    out(
        f"load: open-loop, {args.rate:g} turns/s across {args.conversations} conversations; per server "
        f"{args.duration:g} s measured in {args.rounds} rounds after {args.warmup:g} s warm-up; a reply later "
        f"than {args.lost_after:g} s after a window's last send is lost"
    )
    if args.profile:
        out(f"PROFILING the {args.profile_server} server into {args.profile}: its CPU and latency figures are inflated")
    connector = Connector()
    connector_runner = web.AppRunner(connector.app(), access_log=None)
    await connector_runner.setup()
    await web.TCPSite(connector_runner, LOOPBACK, 0).start()
    connector_url = f"http://{LOOPBACK}:{connector_runner.addresses[0][1]}/"
    generator = LoadGenerator(args, connector, connector_url)
    log_dir = Path(tempfile.mkdtemp(prefix="bench-logs-"))
    servers: list[ServerProcess] = []
    results: dict[str, Result] = {}
    sweep: list[Result] = []
    log_lines: dict[str, int] = {}
    try:
        for name in args.servers:
            profile = args.profile if name == args.profile_server else None
            server = ServerProcess(name, connector_url, log_dir, profile)
            servers.append(server)
            started = time.perf_counter()
            await server.start()
            out(f"[{name}] started in {time.perf_counter() - started:.1f} s (pid {server.pid}); warming up")
            await generator.window(server, "warm-up", args.rate, args.warmup, measured=False)
            results[name] = Result(name, "main", args.rate)
        for round_number in range(args.rounds):
            shift = round_number % len(servers)
            for server in servers[shift:] + servers[:shift]:  # rotate the order: no server always goes first
                other = await wait_until_quiet(args.quiet_wait)
                window = await generator.window(server, "main", args.rate, args.duration / args.rounds)
                results[server.name].add(window)
                out(f"[round {round_number + 1}/{args.rounds}] {server.name}: sent {window.sent}, lost {window.lost}, "
                    f"p50 {fmt(window.percentile(50))} ms, p99 {fmt(window.percentile(99))} ms, CPU "
                    f"{fmt(window.cpu_ms_per_turn, 2)} ms/turn, other processes {100 * other:.0f} % before / "
                    f"{fmt(window.share(window.other_cpu_seconds), 0)} % during")  # fmt: skip
        sweeper = next((s for s in servers if s.name == args.sweep_server), None)
        if sweeper is not None:
            for rate in args.sweep_rates:
                await wait_until_quiet(args.quiet_wait)
                step = Result(sweeper.name, "sweep", rate)
                step.add(await generator.window(sweeper, "sweep", rate, args.sweep_step))
                sweep.append(step)
                out(f"[sweep] {sweeper.name} {rate:g}/s: sent {step.sent}, lost {step.lost}, "
                    f"p50 {fmt(step.percentile(50))} ms, p99 {fmt(step.percentile(99))} ms, "
                    f"CPU {fmt(step.cpu_ms_per_turn, 2)} ms/turn")  # fmt: skip
                if step.lost or step.percentile(99) > OVERLOADED_P99_MS:  # past the knee: more only hurts
                    break
    finally:
        for server in servers:
            await server.stop()
        for server in servers:
            with contextlib.suppress(OSError):
                log_lines[server.name] = len(server.log_path.read_bytes().splitlines())
        await connector_runner.cleanup()
        shutil.rmtree(log_dir, ignore_errors=True)
    return Outcome(results, sweep, connector.unmatched, log_lines)


def report(args: argparse.Namespace, outcome: Outcome) -> None:
    results, sweep = outcome.results, outcome.sweep
    out()
    out("RESULTS (all rounds together; latency = POST sent -> reply at the connector)")
    for line in table(RESULT_HEADERS, [result_row(r) for r in results.values()]):
        out(line)
    out("  lost: no reply within --lost-after s; crossed: the reply went to another conversation than its turn's;")
    out("  wrong: not the expected echo text / menu card; extra: more than one reply to a turn; typing: typing")
    out("  activities (not replies); rounds min-max: CPU ms/turn of the best and worst round; GC max: the server's")
    out("  longest garbage-collector pause; srv / gen / other CPU %: the server, the load generator and all other")
    out("  processes, as % of one core over the windows.")
    for result in results.values():
        lags = sorted(result.send_lags_ms)
        out(f"  {result.server}: server CPU {result.cpu_seconds:.2f} s, of which main thread "
            f"{result.main_thread_cpu_seconds:.2f} s; load generator's send lag p99 {fmt(nearest_rank(lags, 99))} "
            f"ms; the server logged {outcome.log_lines.get(result.server, 0)} lines in all")  # fmt: skip
        if result.gc:
            count, total, longest = result.gc["count"], result.gc["total_ms"], result.gc["longest_ms"]
            out(f"    garbage collector: {sum(total):.0f} ms paused ({sum(total) / result.sent:.2f} ms/turn); "
                f"{count[2]} full (gen2) collections, longest {longest[2]:.1f} ms; gen0/1 longest "
                f"{max(longest[:2]):.1f} ms; {result.gc.get('objects', 0)} objects tracked")  # fmt: skip
    out(f"  connector posts that matched no turn (late or stray): {outcome.unmatched}")
    noisy = [r for r in [*results.values(), *sweep] if r.share(r.other_cpu_seconds) > 15]
    if noisy:
        names = ", ".join(f"{r.server} {r.label}" for r in noisy)
        out(f"  WARNING: other processes used > 15 % of a core during {names}: the machine is shared, so those "
            "figures are noisy")  # fmt: skip

    ratios: dict[str, tuple[float, list[float]]] = {}
    for a, b in (
        ("ours", "echo"),
        ("ours", "bare"),
        ("echo", "bare"),
        ("ours-frozen", "echo"),
        ("ours-frozen", "ours"),
    ):
        if a in results and b in results:
            overall = results[a].cpu_ms_per_turn / results[b].cpu_ms_per_turn
            paired = [
                x.cpu_ms_per_turn / y.cpu_ms_per_turn
                for x, y in zip(results[a].rounds, results[b].rounds, strict=True)
                if x.sent and y.sent and y.cpu_seconds > 0
            ]
            ratios[f"{a}/{b}"] = (overall, paired)
            spread = (
                f"; per round {min(paired):.2f}-{max(paired):.2f}, median {statistics.median(paired):.2f}"
                if paired
                else ""
            )
            out(f"{a} / {b} CPU per turn: {overall:.2f}x{spread}")

    first_over: Result | None = None
    if sweep:
        out()
        out(f"RATE SWEEP ({args.sweep_server}, {args.sweep_step:g} s per step on the same warm server; it stops "
            f"after a step with lost replies or p99 > {OVERLOADED_P99_MS:g} ms)")  # fmt: skip
        for line in table(RESULT_HEADERS, [result_row(r) for r in sweep]):
            out(line)
        first_over = next((s for s in sweep if s.lost or s.percentile(99) > args.target_p99_ms), None)

    out()
    out("TARGETS (printed, not asserted)")
    ours, echo = results.get("ours"), results.get("echo")
    if ours:
        note = "" if args.rate == 100 else f" (measured at {args.rate:g} turns/s; the target is set at 100)"
        p99 = ours.percentile(99)
        verdict = "PASS" if p99 <= args.target_p99_ms and not ours.lost else "MISS"
        out(f"  {verdict}  ours p99 <= {args.target_p99_ms:g} ms at 100 turns/s: p99 {fmt(p99)} ms, lost {ours.lost}"
            f"{note}")  # fmt: skip
    if ours and echo:
        overall, paired = ratios["ours/echo"]
        verdict = "PASS" if overall <= args.target_cpu_ratio else "MISS"
        out(f"  {verdict}  ours CPU per turn <= {args.target_cpu_ratio:g}x the SDK echo bot's: {overall:.2f}x "
            f"({ours.cpu_ms_per_turn:.2f} vs {echo.cpu_ms_per_turn:.2f} ms/turn)")  # fmt: skip
    for result in results.values():
        out(f"  {'PASS' if result.clean else 'MISS'}  {result.server}: every turn answered once, in its own "
            f"conversation (lost {result.lost}, crossed {result.crossed}, wrong {result.bad}, extra {result.extra}, "
            f"http errors {result.http_errors})")  # fmt: skip
    if sweep:
        if first_over is not None:
            why = f"lost {first_over.lost}" if first_over.lost else f"p99 {fmt(first_over.percentile(99))} ms"
            reached = f"{first_over.rate:g} turns/s ({why})"
        else:
            reached = f"not reached up to {sweep[-1].rate:g} turns/s"
        out(f"  INFO  {args.sweep_server}: first swept rate with p99 > {args.target_p99_ms:g} ms: {reached}")
        over = [s.lost > 0 or s.percentile(99) > args.target_p99_ms for s in sweep]
        if any(over):
            knee = next(i for i in range(len(sweep)) if all(over[i:]))
            if sweep[knee] is not first_over:
                out(f"  INFO  {args.sweep_server}: p99 > {args.target_p99_ms:g} ms at every swept rate from "
                    f"{sweep[knee].rate:g} turns/s on (the earlier step over it was a one-off spike)")  # fmt: skip

    profiled = results.get(args.profile_server)
    if args.profile and os.path.exists(args.profile) and profiled:
        out()
        out(f"PROFILE of the {profiled.server} server over its measured windows ({profiled.sent} turns; main thread "
            "only: cProfile does not see worker threads)")  # fmt: skip
        for line in profile_lines(args.profile, profiled.sent):
            out(line)


def _rates(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if any(not 0 < rate <= 2000 for rate in rates):
        raise argparse.ArgumentTypeError("each rate must be in (0, 2000]")
    return rates


def _bounded(low: float, high: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        value = float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Turn benchmark: our bot, the Agents SDK echo bot and a bare aiohttp handler (see docstring)."
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="short run: 5 s per server in 2 rounds, 2 s warm-up, 2 s sweep steps")
    add("--duration", type=_bounded(1, 300), help="measured seconds per server, over all rounds (default 20; quick 5)")
    add("--rounds", type=int, choices=range(1, 21), metavar="N", help="rounds the duration is split into (4; quick 2)")
    add("--rate", type=_bounded(1, 2000), default=100.0, help="turns per second (default 100)")
    add("--conversations", type=int, default=50, choices=range(1, 10001), metavar="C",
        help="conversations the turns are spread over (default 50)")  # fmt: skip
    add("--warmup", type=_bounded(0, 60), help="unmeasured warm-up seconds per server (default 3; quick 2)")
    add("--lost-after", type=_bounded(0.5, 60), default=5.0,
        help="a reply later than this after a window's last send is lost (default 5 s)")  # fmt: skip
    add("--servers", default=",".join(DEFAULT_SERVERS),
        help="comma-separated, from bare,echo,ours,ours-frozen (an experiment: ours with gc.freeze() after "
             "start-up); default bare,echo,ours")  # fmt: skip
    add("--sweep-rates", type=_rates, default=[50, 100, 150, 200, 300, 400, 600],
        help="the rate sweep's steps in turns/s (default 50,100,150,200,300,400,600; '' = none)")  # fmt: skip
    add("--sweep-step", type=_bounded(1, 60), help="seconds per sweep step (default 5; quick 2)")
    add("--sweep-server", choices=SERVERS, default="ours", help="the server swept (default ours)")
    add("--no-sweep", action="store_true", help="skip the rate sweep")
    add("--quiet-wait", type=_bounded(0, 600), default=20.0,
        help="before each window, wait up to this many s for other processes to go quiet (default 20)")  # fmt: skip
    add("--pool", type=int, default=100, choices=range(1, 1001), metavar="N", help="client connections (default 100)")
    add("--target-p99-ms", type=float, default=50.0, help="p99 target for ours (default 50)")
    add("--target-cpu-ratio", type=float, default=1.5, help="CPU per turn target, ours / echo (default 1.5)")
    add("--profile", metavar="FILE",
        help="cProfile one server (--profile-server) over its measured windows into FILE and print the top "
             "entries (no sweep then); with --serve, the server writes its profile there")  # fmt: skip
    add("--profile-server", choices=SERVERS, default="ours", help="the server --profile profiles (default ours)")
    add("--serve", choices=SERVERS, help="run one server (used by the benchmark itself)")
    add("--port", type=int, default=0, help="with --serve: the port (0 = any free one, printed as READY <port>)")
    add("--connector", help="with --serve: the connector URL (loopback only)")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 20.0)
    args.rounds = args.rounds or (2 if args.quick else 4)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if args.quick else 3.0)
    args.sweep_step = args.sweep_step or (2.0 if args.quick else 5.0)
    if args.no_sweep or args.profile:  # a profile covers the measured rounds only
        args.sweep_rates = []
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    if (
        not args.servers
        or any(name not in SERVERS for name in args.servers)
        or len(set(args.servers)) < len(args.servers)
    ):
        parser.error("--servers takes distinct names from " + ",".join(SERVERS))
    if args.serve and not args.connector:
        parser.error("--serve needs --connector URL")
    if args.profile:
        args.profile = str(Path(args.profile).resolve())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.port, args.connector, args.profile))
        return 0

    async def guarded() -> Outcome:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            if task is not None:
                loop.add_signal_handler(signum, task.cancel)
        return await run(args)

    began = time.perf_counter()
    try:
        outcome = asyncio.run(guarded())
    except asyncio.CancelledError:
        out("interrupted; the servers were stopped")
        return 130
    report(args, outcome)
    out()
    out(f"total wall time {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
