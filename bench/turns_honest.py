"""The honest turn benchmark: our bot as Teams uses it, against the Agents SDK's echo bot set up alike.

Run from the repository root (PostgreSQL at 127.0.0.1:5432, trust, database `test`, for the postgres runs):

    .venv/bin/python bench/turns_honest.py             # full run (about 12 minutes)
    .venv/bin/python bench/turns_honest.py --quick     # short run (about 4 minutes)

What `bench/turns.py` leaves out, this one has (docs/benchmarks.md, "Honest turn benchmark"):

* **Authentication on.** Every request carries a Bot Framework JWT (RS256, signed here with a local key; both
  servers validate it with the SDK's `JwtTokenValidator` against that key: ours through `bot/auth.py`, the echo
  bot through the SDK's own aiohttp `jwt_authorization_middleware`). Replies go over https to a connector stub on
  127.0.0.1 whose certificate comes from a CA made for the run (trustme), with `CONNECTOR_HOSTS=127.0.0.1`.
* **1,000 users in 50 organisations**, registered through the services before the run (each organisation with
  its Teams tenant and its own Partner Center customer in the sandbox). Each user has a personal chat; each turn
  comes from one user (tenant id + AAD object id), so the caller cache rarely helps. Before the warm-up, user i
  takes the script's first i mod 6 steps, so that every window has the script's whole mix; a user whose turn was
  refused (503 every try) tries the same step again later.
* **A mix of turns.** Each user goes round the script in SCRIPT (menu; subscriptions, which lists from the mirror with
  the sandbox's licence counts and starts a dialog; a refresh submit, which syncs from the sandbox; close; users;
  done): one turn in six is a menu turn, the others are dialog steps that write the conversation state.
* **SQLite and PostgreSQL.** One of our servers per database (a fresh SQLite file; a fresh PostgreSQL database,
  dropped at the end).
* **A connector that takes 100 ms** to answer each POST (typing or reply), as Teams' does over the internet.
* **The Partner Center sandbox in its own process** (as Microsoft's API is elsewhere), seeded with 50 customers.

The echo bot gets the same JWT validation, the same kept-alive connector client pool (`bot/connector_clients.py`),
the same https connector and the same `gc.freeze()` after start-up as ours; its state is the SDK's MemoryStorage.

The load generator acts as Teams: turns go out open-loop at R turns/s, each from the next idle user (a user has at
most one turn outstanding); a 503 is sent again after its Retry-After, up to --max-retries times. A turn's latency
is from the POST that was admitted to the first reply at the connector. A turn **misses** when it was admitted but
its reply came later than 5 s (or never); it is **refused** when every try got 503.

This program prints figures and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import json
import math
import os
import secrets
import shutil
import signal
import ssl
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

THIS_FILE = os.path.abspath(__file__)
ROOT = Path(THIS_FILE).parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import databases  # noqa: E402
from bench import turns as base  # noqa: E402  (the shared measuring helpers; registers the atexit kill)

LOOPBACK = "127.0.0.1"
APP_ID = "5e2b6c1d-0a9f-4b8e-9c7d-6f5e4d3c2b1a"
APP_TENANT_ID = "3c1b2a09-8f7e-4d6c-9b5a-4e3d2c1b0a9f"
APP_PASSWORD = "bench-only-secret"
KID = "bench-signing-key"
BOT_FRAMEWORK_ISSUER = "https://api.botframework.com"
OUTBOUND_TOKEN = "bench-outbound-token"
ORGANISATIONS = 50
USERS_PER_ORGANISATION = 20
SERVER_KINDS = ("echo", "ours")
STAGGER_RATE = 40.0  # turns per second while users are spread over the script (unmeasured)
PROFILE_ENV = "BENCH_TURNS_PROFILE_DIR"  # set by --profile: each server writes its cProfile there when it stops


@dataclass(frozen=True)
class Step:
    name: str
    text: str | None
    value: dict[str, Any] | None
    expect: bytes  # in one of the turn's replies (ours); the echo bot answers "Echo: <text>"
    calls_partner_center: bool = False  # ours asks the sandbox before it answers


SCRIPT = (
    Step("menu", "menu", None, b"What would you like to do?"),
    Step("subscriptions", "subscriptions", None, b"subs_refresh", calls_partner_center=True),  # licence counts
    Step("refresh", None, {"verb": "subs_refresh", "page": 0}, b"subs_refresh", calls_partner_center=True),
    Step("close", None, {"verb": "subs_close"}, b"Type **subscriptions** to open them again"),
    Step("users", "users", None, b"users_done"),
    Step("users-done", None, {"verb": "users_done"}, b"Done with users."),
)


def out(line: str = "") -> None:
    base.out(line)


# ==== the population (made by the load generator, registered by our servers) =============================


def make_population(customer_ids: list[str]) -> list[dict[str, Any]]:
    organisations = []
    for o in range(ORGANISATIONS):
        users = [
            {
                "email": f"user{u}@org{o}.example.com",
                "name": f"User {o}-{u}",
                "user_id": f"29:bench-{o}-{u}",
                "aad": str(uuid.uuid4()),
                "conversation": f"a:bench-personal-{o}-{u}",
            }
            for u in range(USERS_PER_ORGANISATION)
        ]
        organisations.append(
            {
                "slug": f"bench-org-{o}",
                "name": f"Bench Organisation {o}",
                "tenant": str(uuid.uuid4()),
                "customer": customer_ids[o],
                "users": users,
            }
        )
    return organisations


async def register_population(services: Any, organisations: list[dict[str, Any]]) -> None:
    """Through the services, as the operator's CLI does: organisation, tenant, customer, members."""
    actor = "bench"
    for org in organisations:
        view = await services.organisations.create(org["slug"], {"name": org["name"]}, actor=actor)
        await services.organisations.link_teams_tenant(org["slug"], org["tenant"], actor=actor)
        await services.organisations.set_partner_center_customer(view.id, org["customer"], actor=actor)
        for index, user in enumerate(org["users"]):
            await services.organisations.add_member(
                org["slug"],
                user["email"],
                ["admin", "billing"] if index == 0 else ["admin"],
                actor=actor,
                display_name=user["name"],
                channel_user_id=user["user_id"],
                aad_object_id=user["aad"],
            )


# ==== the servers (`--serve KIND` in their own process) ====================================================


class LocalSigningKeys:
    """The inbound token's public key, from the run's folder (the SDK would fetch Microsoft's JWKS)."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        self._key = jwt.PyJWK(jwk)

    async def get_signing_key(self, jwks_uri: str, header: dict[str, Any]) -> Any:  # noqa: ARG002 - the SDK's signature; one key set
        if header.get("kid") != KID:
            raise jwt.PyJWKClientError("no such key")
        return self._key


class FixedTokenProvider:
    """The outbound (bot -> connector) token: fixed, no MSAL, no network."""

    def __init__(self, configuration: Any) -> None:
        self._configuration = configuration

    @property
    def configuration(self) -> Any:
        return self._configuration

    async def get_access_token(self, resource_url: str, scopes: list[str], force_refresh: bool = False) -> str:  # noqa: ARG002 - the SDK's signature; one fixed token
        return OUTBOUND_TOKEN

    def get_token_credential(self) -> Any:
        raise NotImplementedError


def bench_settings(**values: Any) -> Any:
    from services.settings import Settings

    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        microsoft_app_id=APP_ID,
        microsoft_app_password=APP_PASSWORD,
        microsoft_app_tenant_id=APP_TENANT_ID,
        connector_hosts=LOOPBACK,
        host=LOOPBACK,
        seed_demo_organisation=False,
        log_level="INFO",
        **values,
    )


def bench_connections(settings: Any) -> Any:
    from microsoft_agents.hosting.core.authorization import ConnectionManager

    from bot.auth import connection_settings

    return ConnectionManager(
        FixedTokenProvider, CONNECTIONS={"SERVICE_CONNECTION": {"SETTINGS": connection_settings(settings)}}
    )


def _sandbox_opener(url: str, token: str) -> Any:
    from services.partner_center.auth import StaticTokenProvider
    from services.partner_center.client import PartnerCenterClient
    from startup.partner_center import PartnerCenter

    @contextlib.asynccontextmanager
    async def opener(settings: Any) -> AsyncIterator[Any]:  # noqa: ARG001 - start-up's signature; the bench's own Partner Center
        async with ClientSession() as session:
            yield PartnerCenter(
                PartnerCenterClient(
                    session, base_url=url, price_sheet_url=url, tokens=StaticTokenProvider(token), request_timeout=30
                )
            )

    return opener


def _our_app(run: dict[str, Any], workdir: Path, trust: ssl.SSLContext, keys: LocalSigningKeys) -> web.Application:
    from cryptography.fernet import Fernet

    from app import create_app
    from services.logging_context import configure_logging

    settings = bench_settings(
        database_url=run["database_url"],
        secrets_key=Fernet.generate_key().decode(),
        max_concurrent_turns=run["max_concurrent_turns"],
        max_working_turns=run["max_working_turns"],
        mail_outbox_dir=workdir / "outbox",
        job_poll_interval_seconds=1.0,
    )
    configure_logging(settings.log_level, "json")  # as app.main() does; stderr goes to the server's log file
    return create_app(
        settings,
        connections=bench_connections(settings),
        signing_keys=keys,
        connector_tls=trust,
        partner_center=_sandbox_opener(run["sandbox_url"], run["sandbox_token"]),
    )


def _echo_app(trust: ssl.SSLContext, keys: LocalSigningKeys) -> web.Application:
    """The SDK's echo bot with the SDK's own JWT middleware (the validator finds our local key), our kept-alive
    connector client pool, and a turn counter in ConversationState over MemoryStorage (state per turn)."""
    from microsoft_agents.hosting.aiohttp import CloudAdapter, jwt_authorization_middleware
    from microsoft_agents.hosting.core import (
        ActivityHandler,
        ConversationState,
        MemoryStorage,
        MessageFactory,
        TurnContext,
    )
    from microsoft_agents.hosting.core.authorization import AgentAuthConfiguration, AuthTypes
    from microsoft_agents.hosting.core.authorization.jwt import JwtTokenValidator

    from bot.connector_clients import KeepAliveClientFactory
    from services.outbound_hosts import HostAllowList

    JwtTokenValidator._jwk_client_manager = keys  # type: ignore[assignment]  # the local key, not Microsoft's JWKS
    settings = bench_settings()
    connections = bench_connections(settings)
    config = AgentAuthConfiguration(
        auth_type=AuthTypes.client_secret,
        client_id=APP_ID,
        tenant_id=APP_TENANT_ID,
        client_secret=APP_PASSWORD,
        validate_issuer=True,
    )
    factory = KeepAliveClientFactory(connections, HostAllowList("connector", "CONNECTOR_HOSTS", (LOOPBACK,)), tls=trust)
    adapter = CloudAdapter(connection_manager=connections, channel_service_client_factory=factory)
    storage = MemoryStorage()

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

    async def close_pool(_app: web.Application) -> AsyncIterator[None]:
        yield
        await factory.close()

    app = web.Application(middlewares=[jwt_authorization_middleware])
    app["agent_configuration"] = config
    app.cleanup_ctx.append(close_pool)
    app.router.add_post("/api/messages", handle)
    return app


async def serve(kind: str, run: dict[str, Any]) -> None:
    base._require_loopback(run["connector_url"])
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-honest-{kind}-"))
    try:
        trust = ssl.create_default_context(cafile=run["ca_file"])
        keys = LocalSigningKeys(run["jwk"])
        app = _echo_app(trust, keys) if kind == "echo" else _our_app(run, workdir, trust, keys)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()  # ours: migrations, catalog sync from the sandbox, services
        if kind == "ours":
            from app import RUNTIME

            started = time.perf_counter()
            await register_population(app[RUNTIME].services, run["organisations"])
            sys.stderr.write(f"registered the population in {time.perf_counter() - started:.1f} s\n")
        else:
            gc.collect()  # as create_app does for ours
            gc.freeze()
        site = web.TCPSite(runner, LOOPBACK, 0)
        await site.start()
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        profile_folder = os.environ.get(PROFILE_ENV)
        profiler = cProfile.Profile(time.process_time) if profile_folder else None
        sys.stdout.write(f"READY {runner.addresses[0][1]}\n")
        sys.stdout.flush()
        parent = os.getppid()
        if profiler is not None:
            profiler.enable()
        while not stop.is_set():  # also stop if the load generator died without telling us
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
            if os.getppid() != parent:
                break
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(Path(profile_folder or ".") / f"{kind}-{os.getpid()}.prof")
        await runner.cleanup()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# ==== the load generator's side ==========================================================================


class Server:
    """One `--serve` subprocess; always stopped by `stop()` (and killed at exit if still alive)."""

    script = THIS_FILE  # the program run with `--serve KIND --run-file FILE` (bench/workers.py has its own)

    def __init__(self, label: str, kind: str, run: dict[str, Any], folder: Path) -> None:
        self.label, self.kind = label, kind
        self.run_file = folder / f"{label}.json"
        self.run_file.write_text(json.dumps(run))
        self.organisations: list[dict[str, Any]] = run["organisations"]
        self.log_path = folder / f"{label}.log"
        self.process: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/api/messages"

    def cpu_seconds(self) -> float:
        """The server's CPU time: its process and its children (worker processes), all their threads."""
        total = base.proc_cpu_seconds(self.pid)
        with contextlib.suppress(OSError):
            with open(f"/proc/{self.pid}/task/{self.pid}/children", encoding="ascii") as children:
                for child in children.read().split():
                    with contextlib.suppress(OSError):  # a worker that has just ended
                        total += base.proc_cpu_seconds(int(child))
        return total

    async def start(self) -> None:
        command = [sys.executable, self.script, "--serve", self.kind, "--run-file", str(self.run_file)]
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *command, stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, cwd=ROOT
            )
        base._LIVE_CHILDREN.add(self.process.pid)
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), 300)
        except TimeoutError:
            line = b""
        if not line.startswith(b"READY "):
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"the {self.label} server did not start; its log ends with:\n{tail}")
        self.port = int(line.split()[1])

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
            base._LIVE_CHILDREN.discard(process.pid)


@dataclass
class User:
    org: dict[str, Any]
    user: dict[str, Any]
    step: int = 0


@dataclass
class Turn:
    id: str
    user: User
    step: Step
    echo: bool
    first_sent: float = 0.0
    sent: float = 0.0  # the admitted try
    tries: int = 0
    status: int | None = None
    error: str | None = None
    reply_at: float | None = None
    replies: int = 0
    typing: int = 0
    matched: bool = False
    replied: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def admitted(self) -> bool:
        return self.status is not None and self.status < 300

    @property
    def refused(self) -> bool:
        return self.status == 503

    @property
    def latency_ms(self) -> float | None:
        return (self.reply_at - self.sent) * 1000 if self.reply_at is not None and self.admitted else None

    @property
    def missed(self) -> bool:
        """Admitted, but no reply within Teams' 5 s."""
        latency = self.latency_ms
        return self.admitted and (latency is None or latency > 5000)

    @property
    def right(self) -> bool:
        return self.matched


class Connector:
    """The connector stub (https): records every activity a server sends and answers after `delay` s."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.turns: dict[str, Turn] = {}
        self.unmatched = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v3/conversations/{conversation}/activities", self._send)
        app.router.add_post("/v3/conversations/{conversation}/activities/{activity}", self._send)
        return app

    async def _send(self, request: web.Request) -> web.Response:
        arrived = time.perf_counter()
        raw = await request.read()
        body = json.loads(raw)
        turn = self.turns.get(body.get("replyToId") or request.match_info.get("activity") or "")
        if turn is None:
            self.unmatched += 1
        elif body.get("type") == "typing":
            turn.typing += 1
        else:
            turn.replies += 1
            if turn.reply_at is None:
                turn.reply_at = arrived
                turn.replied.set()
            if turn.echo:
                turn.matched = turn.matched or body.get("text") == f"Echo: {turn.step.text}"
            else:
                turn.matched = turn.matched or turn.step.expect in raw
        await asyncio.sleep(self.delay)  # Teams' connector is a round trip away
        return web.json_response({"id": f"reply-{uuid.uuid4().hex[:12]}"})


@dataclass
class Window:
    label: str
    rate: float
    turns: list[Turn] = field(default_factory=list)
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    generator_cpu_seconds: float = 0.0
    other_cpu_seconds: float = 0.0
    starved: int = 0  # ticks with no idle user (none expected: 1,000 users)
    load: str = ""

    def add(self, other: Window) -> None:
        self.turns += other.turns
        self.cpu_seconds += other.cpu_seconds
        self.wall_seconds += other.wall_seconds
        self.generator_cpu_seconds += other.generator_cpu_seconds
        self.other_cpu_seconds += other.other_cpu_seconds
        self.starved += other.starved

    def count(self, predicate: Any) -> int:
        return sum(1 for t in self.turns if predicate(t))

    def percentile(self, p: float) -> float:
        return base.nearest_rank(sorted(t.latency_ms for t in self.turns if t.latency_ms is not None), p)

    @property
    def admitted(self) -> int:
        return self.count(lambda t: t.admitted)

    @property
    def cpu_ms_per_turn(self) -> float:
        return self.cpu_seconds * 1000 / self.admitted if self.admitted else math.nan

    def share(self, seconds: float) -> float:
        return 100 * seconds / self.wall_seconds if self.wall_seconds else math.nan


class LoadGenerator:
    def __init__(self, args: argparse.Namespace, connector: Connector, connector_url: str, token: str) -> None:
        self.args = args
        self.connector = connector
        self.connector_url = connector_url
        self.authorization = f"Bearer {token}"
        self.run_id = uuid.uuid4().hex[:8]
        self.sequence = 0

    def users(self, organisations: list[dict[str, Any]]) -> deque[User]:
        return deque(User(org, user) for org in organisations for user in org["users"])

    async def stagger(self, server: Server, idle: deque[User], rate: float) -> int:
        """Before the warm-up, user i takes the script's first i mod 6 steps, so that consecutive users (the
        order turns are sent in) stand at consecutive steps and every window has the script's whole mix, not
        just the step all users happen to be at. Returns the users not where they should be (a lost turn sends
        its user back to the menu)."""
        offsets = {id(user): index % len(SCRIPT) for index, user in enumerate(idle)}
        for round_number in range(1, len(SCRIPT)):
            behind = deque(user for user in idle if user.step < offsets[id(user)] and user.step == round_number - 1)
            if behind:
                await self.window(server, behind, "stagger", rate, len(behind) / rate)
        return sum(1 for user in idle if user.step != offsets[id(user)])

    def activity(self, turn: Turn) -> dict[str, Any]:
        user, org = turn.user.user, turn.user.org
        activity: dict[str, Any] = {
            "type": "message",
            "id": turn.id,
            "channelId": "msteams",
            "serviceUrl": self.connector_url,
            "from": {"id": user["user_id"], "name": user["name"], "aadObjectId": user["aad"]},
            "recipient": {"id": f"28:{APP_ID}", "name": "CSP Bot"},
            "conversation": {"id": user["conversation"], "conversationType": "personal", "tenantId": org["tenant"]},
            "channelData": {"tenant": {"id": org["tenant"]}},
            "locale": "en-US",
        }
        if turn.step.text is not None:
            activity["text"] = turn.step.text
            activity["textFormat"] = "plain"
        if turn.step.value is not None:
            activity["value"] = turn.step.value
        return activity

    async def window(self, server: Server, idle: deque[User], label: str, rate: float, duration: float) -> Window:
        count = max(1, round(rate * duration))
        window = Window(label, rate)
        tasks: set[asyncio.Task[None]] = set()
        timeout = ClientTimeout(total=self.args.lost_after + 10)
        async with ClientSession(connector=TCPConnector(limit=2000), timeout=timeout) as session:
            cpu_before = server.cpu_seconds()
            machine_before, own_before = base.machine_busy_seconds(), base.own_cpu_seconds()
            start = time.perf_counter() + 0.05
            for k in range(count):
                delay = start + k / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if not idle:
                    window.starved += 1
                    continue
                user = idle.popleft()
                self.sequence += 1
                turn = Turn(f"{self.run_id}-{self.sequence}", user, SCRIPT[user.step], server.kind == "echo")
                self.connector.turns[turn.id] = turn
                window.turns.append(turn)
                task = asyncio.create_task(self._deliver(session, server.url, turn, idle))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if tasks:  # every turn ends within (retries + 1) x (lost_after + 10) s; wait for them all
                await asyncio.wait(set(tasks))
            window.wall_seconds = time.perf_counter() - start
            window.cpu_seconds = server.cpu_seconds() - cpu_before
            own = base.own_cpu_seconds() - own_before
            window.generator_cpu_seconds = own
            window.other_cpu_seconds = max(0.0, base.machine_busy_seconds() - machine_before - window.cpu_seconds - own)
        for turn in window.turns:
            self.connector.turns.pop(turn.id, None)
        return window

    async def _deliver(self, session: ClientSession, url: str, turn: Turn, idle: deque[User]) -> None:
        payload = json.dumps(self.activity(turn)).encode()
        headers = {"Content-Type": "application/json", "Authorization": self.authorization}
        try:
            for _ in range(1 + self.args.max_retries):
                turn.tries += 1
                turn.sent = time.perf_counter()
                if turn.tries == 1:
                    turn.first_sent = turn.sent
                retry_after = 1.0
                try:
                    async with session.post(url, data=payload, headers=headers) as response:
                        turn.status = response.status
                        retry_after = float(response.headers.get("Retry-After", "1") or 1)
                        await response.read()
                except Exception as error:  # noqa: BLE001 - a refused or timed-out request is counted, never raised
                    turn.error = type(error).__name__
                    turn.status = None
                    return
                if response.status != 503:
                    break
                await asyncio.sleep(retry_after)
            if turn.admitted:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(turn.replied.wait(), self.args.lost_after)
        finally:
            # The user's next turn follows this one's script step if this one was answered, and tries the same
            # step again if every try was refused (a 503 comes before any work: nothing changed on the server,
            # and the windows keep the script's mix); else the user starts over from the menu (which also
            # leaves a task that was waiting).
            user = turn.user
            if turn.reply_at is not None:
                user.step = (user.step + 1) % len(SCRIPT)
            elif not turn.refused:
                user.step = 0
            idle.append(user)


# ==== set-up: PostgreSQL database, sandbox, keys ==========================================================


@contextlib.asynccontextmanager
async def postgres_database() -> AsyncIterator[str]:
    """A fresh database for the run, dropped afterwards whatever happens."""
    async with databases.postgres_database("bench_turns") as (url, name):
        yield url
    out(f"dropped the PostgreSQL database {name}")


async def seed_sandbox(url: str, token: str, customers: int) -> list[str]:
    from bench.partner_center import seed
    from services.partner_center.auth import StaticTokenProvider
    from services.partner_center.client import PartnerCenterClient

    async with ClientSession() as session:
        client = PartnerCenterClient(session, base_url=url, price_sheet_url=url, tokens=StaticTokenProvider(token))
        return [(await seed(client))[0] for _ in range(customers)]


def signing_key() -> tuple[Any, dict[str, Any]]:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from jwt.algorithms import RSAAlgorithm

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    public.update({"kid": KID, "alg": "RS256", "use": "sig"})
    return key, public


def channel_token(key: Any, service_url: str) -> str:
    """What Teams sends: a Bot Framework token for this bot, naming the service URL; reused for every request
    (the channel caches its token), so the load generator signs once."""
    now = int(time.time())
    claims = {"iss": BOT_FRAMEWORK_ISSUER, "aud": APP_ID, "serviceurl": service_url, "nbf": now - 60, "exp": now + 7200}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KID})


# ==== the run =============================================================================================

HEADERS = [
    "server", "rate/s", "turns", "admitted", "503s", "refused", "missed", "wrong", "errors", "typing",
    "p50 ms", "p99 ms", "max ms", "e2e p99 ms", "CPU ms/turn", "srv CPU %", "gen CPU %", "other CPU %",
]  # fmt: skip


def row(label: str, w: Window) -> list[str]:
    e2e = sorted((t.reply_at - t.first_sent) * 1000 for t in w.turns if t.reply_at is not None and t.admitted)
    return [
        label,
        base.fmt(w.rate, 0),
        str(len(w.turns)),
        str(w.admitted),
        str(sum(t.tries - 1 for t in w.turns if t.tries > 1) + w.count(lambda t: t.refused)),
        str(w.count(lambda t: t.refused)),
        str(w.count(lambda t: t.missed)),
        str(w.count(lambda t: t.admitted and t.reply_at is not None and not t.right)),
        str(w.count(lambda t: t.error is not None or (t.status is not None and t.status >= 300 and not t.refused))),
        str(sum(t.typing for t in w.turns)),
        base.fmt(w.percentile(50)),
        base.fmt(w.percentile(99)),
        base.fmt(w.percentile(100)),
        base.fmt(base.nearest_rank(e2e, 99)),
        base.fmt(w.cpu_ms_per_turn, 2),
        base.fmt(w.share(w.cpu_seconds), 0),
        base.fmt(w.share(w.generator_cpu_seconds), 0),
        base.fmt(w.share(w.other_cpu_seconds), 0),
    ]


def loadavg() -> str:
    with open("/proc/loadavg", encoding="ascii") as file:
        return " ".join(file.read().split()[:3])


async def measured(
    generator: LoadGenerator, server: Server, idle: deque[User], label: str, rate: float, duration: float, quiet: float
) -> Window:
    await base.wait_until_quiet(quiet)
    load = loadavg()
    window = await generator.window(server, idle, label, rate, duration)
    window.load = load
    return window


@dataclass
class Rig:
    """What every server of a run shares: the connector stub, the load generator with the channel's token, and the
    run-file values (connector, CA, signing key, the sandbox and the population)."""

    folder: Path
    connector: Connector
    generator: LoadGenerator
    common: dict[str, Any]


@contextlib.asynccontextmanager
async def rig(args: argparse.Namespace, prefix: str = "bench-honest-") -> AsyncIterator[Rig]:
    """The https connector stub (a CA made for the run), a signing key, the sandbox process seeded with a
    customer per organisation, and the population; the folder (servers' logs) is removed after unless kept."""
    import trustme

    from bench.partner_center import sandbox_process

    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        ca = trustme.CA()
        ca_file = folder / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert(LOOPBACK).configure_cert(server_tls)
        connector = Connector(args.connector_delay)
        connector_runner = web.AppRunner(connector.app(), access_log=None)
        await connector_runner.setup()
        try:
            await web.TCPSite(connector_runner, LOOPBACK, 0, ssl_context=server_tls).start()
            connector_url = f"https://{LOOPBACK}:{connector_runner.addresses[0][1]}/"
            key, jwk = signing_key()
            generator = LoadGenerator(args, connector, connector_url, channel_token(key, connector_url))
            sandbox_token = secrets.token_urlsafe(24)
            with sandbox_process(sandbox_token) as sandbox_url:
                started = time.perf_counter()
                customers = await seed_sandbox(sandbox_url, sandbox_token, ORGANISATIONS)
                out(f"sandbox: {len(customers)} customers with 5 subscriptions each, seeded in "
                    f"{time.perf_counter() - started:.0f} s")  # fmt: skip
                common = {
                    "connector_url": connector_url,
                    "ca_file": str(ca_file),
                    "jwk": jwk,
                    "sandbox_url": sandbox_url,
                    "sandbox_token": sandbox_token,
                    "organisations": make_population(customers),
                }
                yield Rig(folder, connector, generator, common)
            out(f"connector posts that matched no turn: {connector.unmatched}")
        finally:
            await connector_runner.cleanup()
    finally:
        if args.keep_logs:
            out(f"server logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


async def run(args: argparse.Namespace) -> None:
    for line in base.machine_lines():
        out(line)
    out(f"load average at start: {loadavg()}")
    servers: list[Server] = []
    async with rig(args) as shared:
        folder, generator, common = shared.folder, shared.generator, shared.common
        try:
            async with contextlib.AsyncExitStack() as stack:
                plan: list[tuple[str, str, dict[str, Any]]] = []
                if "echo" in args.servers:
                    plan.append(("echo", "echo", {}))
                for database in args.databases:
                    variants = [("ours-unbounded", 10_000, 10_000)] if "ours-unbounded" in args.servers else []
                    if "ours" in args.servers:
                        variants += bound_variants(args.max_concurrent_turns, args.max_working_turns)
                    for label, bound, working in variants:
                        if database == "sqlite":
                            url = f"sqlite+aiosqlite:///{folder / (label + '.sqlite3')}"
                        else:
                            url = await stack.enter_async_context(postgres_database())
                        extra = {"database_url": url, "max_concurrent_turns": bound, "max_working_turns": working}
                        plan.append((f"{label}-{database}", "ours", extra))
                for label, kind, extra in plan:
                    server = Server(label, kind, {**common, **extra}, folder)
                    servers.append(server)
                    began = time.perf_counter()
                    await server.start()
                    out(f"[{label}] started and registered {ORGANISATIONS * USERS_PER_ORGANISATION} users in "
                        f"{time.perf_counter() - began:.0f} s (pid {server.pid})")  # fmt: skip
                try:
                    await measure(args, generator, servers)
                finally:
                    for server in servers:
                        await server.stop()
        finally:
            for server in servers:
                await server.stop()


def bound_variants(in_flight: list[int], working: list[int]) -> list[tuple[str, int, int]]:
    """One of our servers per pair of bounds (MAX_CONCURRENT_TURNS, MAX_WORKING_TURNS), labelled by the
    bounds that vary."""
    variants = []
    for bound in in_flight:
        for busy in working:
            label = "ours"
            if len(in_flight) > 1:
                label += f"-{bound}"
            if len(working) > 1:
                label += f"-w{busy}"
            variants.append((label, bound, busy))
    return variants


async def measure(args: argparse.Namespace, generator: LoadGenerator, servers: list[Server]) -> None:
    """Warm-up, the main rounds (CPU per turn, latency, the ratio to echo), the sweep, the overload step."""
    idle = {server.label: generator.users(server.organisations) for server in servers}
    for server in servers:  # every user once round the script: state rows, mirrors and caches as in use
        astray = await generator.stagger(server, idle[server.label], STAGGER_RATE)
        out(f"[{server.label}] staggered the users over the script's steps ({astray} not where they should be)")
        window = await generator.window(server, idle[server.label], "warm-up", args.rate, args.warmup)
        out(f"[{server.label}] warm-up: {len(window.turns)} turns, p99 {base.fmt(window.percentile(99))} ms, "
            f"missed {window.count(lambda t: t.missed)}, wrong "
            f"{window.count(lambda t: t.admitted and t.reply_at is not None and not t.right)}")  # fmt: skip
    main = {server.label: Window("main", args.rate) for server in servers}
    for round_number in range(args.rounds):
        shift = round_number % len(servers)
        for server in servers[shift:] + servers[:shift]:
            window = await measured(
                generator, server, idle[server.label], "main", args.rate, args.duration / args.rounds, args.quiet_wait
            )
            main[server.label].add(window)
            out(f"[round {round_number + 1}/{args.rounds}] {server.label}: {len(window.turns)} turns, p50 "
                f"{base.fmt(window.percentile(50))} ms, p99 {base.fmt(window.percentile(99))} ms, CPU "
                f"{base.fmt(window.cpu_ms_per_turn, 2)} ms/turn, load {window.load}")  # fmt: skip
    out()
    out(f"RESULTS at {args.rate:g} turns/s ({args.duration:g} s per server in {args.rounds} rounds; latency = the "
        "admitted POST -> first reply at the connector)")  # fmt: skip
    for line in base.table(HEADERS, [row(label, w) for label, w in main.items()]):
        out(line)
    echo = main.get("echo")
    for label, window in main.items():
        if echo is not None and label != "echo" and echo.cpu_ms_per_turn:
            out(f"  {label} / echo CPU per turn: {window.cpu_ms_per_turn / echo.cpu_ms_per_turn:.2f}x "
                f"({window.cpu_ms_per_turn:.2f} vs {echo.cpu_ms_per_turn:.2f} ms)")  # fmt: skip
    capacity: dict[str, float] = {}
    if args.sweep_rates:
        capacity = await sweep(args, generator, servers, idle)
    overload_rate = args.overload_rate
    if overload_rate is None:
        ours = [rate for label, rate in capacity.items() if label.startswith("ours") and "unbounded" not in label]
        if not ours:
            return
        overload_rate = 2 * min(ours)
    out()
    out(f"OVERLOAD: every server at {overload_rate:g} turns/s for {args.overload_duration:g} s (a 503 is retried "
        f"after Retry-After, at most {args.max_retries} times)")  # fmt: skip
    rows: list[list[str]] = []
    windows: list[Window] = []
    for server in servers:
        window = await measured(
            generator, server, idle[server.label], "overload", overload_rate, args.overload_duration, args.quiet_wait
        )
        windows.append(window)
        rows.append(row(server.label, window) + [window.load])
        out(f"[overload] {server.label}: admitted {window.admitted}/{len(window.turns)}, p99 "
            f"{base.fmt(window.percentile(99))} ms, missed {window.count(lambda t: t.missed)}, refused "
            f"{window.count(lambda t: t.refused)}, load {window.load}")  # fmt: skip
        out(f"[overload] {server.label}: p50 / p99 ms by step: {by_step(window)}")
    for line in base.table([*HEADERS, "load avg"], rows):
        out(line)
    for server, cells in zip(servers, rows, strict=True):
        p99, missed = cells[HEADERS.index("p99 ms")], cells[HEADERS.index("missed")]
        verdict = "PASS" if missed == "0" and p99 != "-" and float(p99) <= 100 else "MISS"
        out(f"  {verdict}  {server.label} at {overload_rate:g} turns/s: admitted p99 {p99} ms (<= 100), missed "
            f"{missed} (0)")  # fmt: skip
    for server, window in zip(servers, windows, strict=True):
        own = sorted(t.latency_ms for t in window.turns if not t.step.calls_partner_center and t.latency_ms is not None)
        if own and server.kind == "ours":
            out(f"  INFO  {server.label}: admitted p99 of the turns that answer without asking Partner Center: "
                f"{base.fmt(base.nearest_rank(own, 99))} ms ({len(own)} turns)")  # fmt: skip


async def sweep(
    args: argparse.Namespace, generator: LoadGenerator, servers: list[Server], idle: dict[str, deque[User]]
) -> dict[str, float]:
    """Each server over the swept rates; returns each one's capacity: the highest rate it served with no 503,
    no missed reply and p99 <= 100 ms."""
    capacity: dict[str, float] = {}
    out()
    out(f"RATE SWEEP ({args.sweep_step:g} s per step; a 503 is retried after Retry-After, at most "
        f"{args.max_retries} times; a server's sweep stops after a step with missed replies or p99 > 1 s)")  # fmt: skip
    rows: list[list[str]] = []
    for server in servers:
        for rate in args.sweep_rates:
            window = await measured(
                generator, server, idle[server.label], "sweep", rate, args.sweep_step, args.quiet_wait
            )
            rows.append(row(server.label, window) + [window.load])
            if (
                window.admitted == len(window.turns)
                and all(t.tries == 1 for t in window.turns)
                and not window.count(lambda t: t.missed)
                and window.percentile(99) <= 100
            ):
                capacity[server.label] = max(capacity.get(server.label, 0.0), rate)
            out(f"[sweep] {server.label} {rate:g}/s: admitted {window.admitted}/{len(window.turns)}, p99 "
                f"{base.fmt(window.percentile(99))} ms, missed {window.count(lambda t: t.missed)}, refused "
                f"{window.count(lambda t: t.refused)}, CPU {base.fmt(window.cpu_ms_per_turn, 2)} ms/turn, srv "
                f"{base.fmt(window.share(window.cpu_seconds), 0)} %, load {window.load}")  # fmt: skip
            if window.count(lambda t: t.missed) or window.percentile(99) > 1000:
                break
    for line in base.table([*HEADERS, "load avg"], rows):
        out(line)
    for label, rate in capacity.items():
        out(f"  INFO  {label}: capacity (highest swept rate with no 503, none missed, p99 <= 100 ms): {rate:g} turns/s")
    return capacity


def by_step(window: Window) -> str:
    """Each script step's admitted latency, p50 / p99: which kind of turn makes the tail."""
    parts = []
    for step in SCRIPT:
        latencies = sorted(t.latency_ms for t in window.turns if t.step is step and t.latency_ms is not None)
        if latencies:
            p50, p99 = base.nearest_rank(latencies, 50), base.nearest_rank(latencies, 99)
            parts.append(f"{step.name} {base.fmt(p50)} / {base.fmt(p99)} ({len(latencies)})")
    return ", ".join(parts)


def _rates(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if any(not 0 < rate <= 2000 for rate in rates):
        raise argparse.ArgumentTypeError("each rate must be in (0, 2000]")
    return rates


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The honest turn benchmark (see the docstring).")
    add = parser.add_argument
    add("--quick", action="store_true", help="short run: 10 s per server in 2 rounds, 5 s sweep steps")
    add("--rate", type=float, default=50.0, help="turns per second of the main rounds (default 50)")
    add("--duration", type=float, help="measured seconds per server over all rounds (default 30; quick 10)")
    add("--rounds", type=int, help="rounds the duration is split into (default 3; quick 2)")
    add("--warmup", type=float, help="unmeasured seconds per server first (default 30, about 1.5 turns per user)")
    add("--servers", default="echo,ours", help="from echo,ours,ours-unbounded (ours without admission control)")
    add("--databases", default="sqlite,postgres", help="our servers' databases: sqlite,postgres (default both)")
    add("--max-concurrent-turns", default="64",
        help="ours: MAX_CONCURRENT_TURNS; several (16,32,64) start one server each (default 64)")  # fmt: skip
    add("--max-working-turns", default="4",
        help="ours: MAX_WORKING_TURNS; several (2,4,8) start one server each (default 4)")  # fmt: skip
    add("--overload-rate", type=float,
        help="after the sweep, every server at this rate (default: twice the capacity found for ours)")  # fmt: skip
    add("--overload-duration", type=float, help="seconds of the overload step (default 30; quick 10)")
    add("--sweep-rates", type=_rates, default=[25, 50, 75, 100, 125, 150, 200, 300],
        help="rates of the sweep, per server (default 25,50,75,100,125,150,200,300; '' = none)")  # fmt: skip
    add("--sweep-step", type=float, help="seconds per sweep step (default 10; quick 5)")
    add("--max-retries", type=int, default=4, help="times a 503 is sent again, as Teams would (default 4)")
    add("--connector-delay", type=float, default=0.1, help="seconds the connector stub takes per POST (default 0.1)")
    add("--lost-after", type=float, default=10.0, help="an admitted turn's reply is waited for this long (default 10)")
    add("--quiet-wait", type=float, default=20.0, help="wait up to this long for other processes to go quiet")
    add("--keep-logs", action="store_true", help="keep the servers' logs (their folder is printed)")
    add("--profile", metavar="DIR",
        help="each server runs under cProfile (CPU time) once ready; writes DIR/KIND-PID.prof as it stops")  # fmt: skip
    add("--serve", choices=SERVER_KINDS, help=argparse.SUPPRESS)
    add("--run-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
        os.environ[PROFILE_ENV] = str(Path(args.profile).resolve())  # the servers inherit it
    args.duration = args.duration or (10.0 if args.quick else 30.0)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.warmup = args.warmup if args.warmup is not None else (20.0 if args.quick else 30.0)
    args.sweep_step = args.sweep_step or (5.0 if args.quick else 10.0)
    args.max_concurrent_turns = [int(part) for part in args.max_concurrent_turns.split(",") if part.strip()]
    args.max_working_turns = [int(part) for part in args.max_working_turns.split(",") if part.strip()]
    args.overload_duration = args.overload_duration or (10.0 if args.quick else 30.0)
    args.servers = [name.strip() for name in args.servers.split(",") if name.strip()]
    args.databases = database_names(parser, args.databases)
    if any(name not in ("echo", "ours", "ours-unbounded") for name in args.servers):
        parser.error("--servers takes names from echo,ours,ours-unbounded")
    return args


def database_names(parser: argparse.ArgumentParser, text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if any(name not in ("sqlite", "postgres") for name in names):
        parser.error("--databases takes names from sqlite,postgres")
    return names


def run_timed(measurement: Any) -> int:
    """Run the measurement (a coroutine); the total time and the load at the end, or 130 when interrupted."""
    began = time.perf_counter()
    try:
        asyncio.run(measurement)
    except KeyboardInterrupt:
        out("interrupted; the servers were stopped")
        return 130
    out(f"total wall time {time.perf_counter() - began:.0f} s; load average at the end: {loadavg()}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, json.loads(Path(args.run_file).read_text())))
        return 0
    return run_timed(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
