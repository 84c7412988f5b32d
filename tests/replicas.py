"""Bot replicas as real processes: `python app.py`, or this module's launcher (`python -m tests.replicas`:
the same app whose Partner Center client calls a sandbox the test serves, so several replicas share one
Partner Center). Each runs in its own process group on a free loopback port, writes its log to a file,
is polled for health with a bound, and is killed with its whole group when the test ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from aiohttp import web

from tests.fakes import free_port

ROOT = Path(__file__).resolve().parent.parent
# Importing the SDK and building the app takes seconds; the machine running the suite is shared.
START_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.1
# Headers that belong to one HTTP hop, not to the request or answer a gate passes on.
HOP_HEADERS = {"host", "content-length", "transfer-encoding", "connection", "content-encoding"}
# What a replica must not inherit from the environment the tests run in.
FOREIGN_SETTINGS = ("MICROSOFT_APP_", "PARTNER_CENTER_", "DATABASE_", "SEED_", "JOB_", "MAIL_", "SMTP_", "SECRETS_")


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new PostgreSQL database without any schema (as on a first deployment), dropped with whatever
    is still connected to it when the block ends."""
    from tests.conftest import POSTGRES_ADMIN_DSN  # not at the top: the launcher below runs without pytest

    name = f"cspbot_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{POSTGRES_ADMIN_DSN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    finally:
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@dataclass
class Replica:
    name: str
    port: int
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    async def wait_healthy(self, session: aiohttp.ClientSession, within: float = START_TIMEOUT_SECONDS) -> dict:
        """Poll `/healthz` until it answers 200; fail at once if the process exits, or after `within` seconds."""
        deadline = asyncio.get_running_loop().time() + within
        last = "no answer"
        while asyncio.get_running_loop().time() < deadline:
            if not self.alive():
                raise AssertionError(f"replica {self.name} exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            try:
                async with session.get(f"{self.url}/healthz", timeout=aiohttp.ClientTimeout(total=5)) as response:
                    if response.status == 200:
                        return dict(await response.json())
                    last = f"{response.status} {await response.text()}"
            except (aiohttp.ClientError, TimeoutError) as error:
                last = repr(error)
            await asyncio.sleep(POLL_SECONDS)
        raise AssertionError(f"replica {self.name} not healthy after {within:.0f} s ({last}):\n{self.log()[-4000:]}")

    async def post(self, path: str, json: Any) -> aiohttp.ClientResponse:
        """For the tests' chat helpers, which post activities the way aiohttp's test client does."""
        async with aiohttp.ClientSession() as session, session.post(f"{self.url}{path}", json=json) as response:
            await response.read()
            return response

    def kill(self) -> None:
        """SIGKILL the replica's whole process group (nothing it started survives it)."""
        if self.process.returncode is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.process.wait(timeout=30)


@dataclass
class Replicas:
    """The replicas one test starts; `kill_all()` (in the test's `finally`) stops every one."""

    folder: Path
    started: list[Replica] = field(default_factory=list)

    def environment(self, database_url: str, **settings: str) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_SETTINGS)}
        env.pop("PYTHONPATH", None)
        env.update(
            DATABASE_URL=database_url,
            HOST="127.0.0.1",
            LOG_LEVEL="INFO",
            MAIL_OUTBOX_DIR=str(self.folder / "outbox"),
            SECRETS_KEY_FILE=str(self.folder / "secrets.key"),  # shared: what one replica seals, all open
        )
        env.update(settings)
        return env

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Replica:
        port = free_port()
        log_path = self.folder / f"replica-{name}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                argv,
                cwd=self.folder,  # outside the checkout: no stray .env, nothing written into it
                env={**env, "PORT": str(port)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, killed as one
            )
        replica = Replica(name, port, log_path, process)
        self.started.append(replica)
        return replica

    def start_app(self, name: str, database_url: str, **settings: str) -> Replica:
        """`python app.py`, exactly as an operator starts a replica (the built-in sandbox included)."""
        return self.start(name, [sys.executable, str(ROOT / "app.py")], self.environment(database_url, **settings))

    def start_sharing(self, name: str, database_url: str, sandbox_url: str, token: str, **settings: str) -> Replica:
        """The app with its Partner Center client pointed at the sandbox at `sandbox_url`."""
        env = self.environment(database_url, **settings)
        env.update(PYTHONPATH=str(ROOT), TEST_SANDBOX_URL=sandbox_url, TEST_SANDBOX_TOKEN=token)
        return self.start(name, [sys.executable, "-m", "tests.replicas"], env)

    def kill_all(self) -> None:
        for replica in self.started:
            replica.kill()


class PartnerCenterGate:
    """Between one replica and the shared sandbox: forwards every call, so the test knows which replica
    calls; while `hold_checkouts` is set it forwards a checkout (Microsoft places the order) but holds
    the answer until `release()` — the replica is stuck after its order went through."""

    def __init__(self, sandbox_url: str, session: aiohttp.ClientSession) -> None:
        self._sandbox_url, self._session = sandbox_url, session
        self.hold_checkouts = False
        self.holding = asyncio.Event()
        self._released = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._forward)
        return app

    def release(self) -> None:
        self._released.set()

    async def _forward(self, request: web.Request) -> web.Response:
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_HEADERS}
        async with self._session.request(
            request.method, f"{self._sandbox_url}{request.path_qs}", data=await request.read(), headers=headers
        ) as answer:
            body = await answer.read()
            answer_headers = {key: value for key, value in answer.headers.items() if key.lower() not in HOP_HEADERS}
        if self.hold_checkouts and request.method == "POST" and request.path.endswith("/checkout"):
            self.holding.set()
            await self._released.wait()
        return web.Response(status=answer.status, body=body, headers=answer_headers)


# ---- the launcher (`python -m tests.replicas`) ----------------------------------------------------------


def _serve_sharing_a_sandbox() -> None:
    """Like `app.main()`, but Partner Center is the sandbox at TEST_SANDBOX_URL (bearer TEST_SANDBOX_TOKEN):
    the settings offer Microsoft's API or a sandbox of the replica's own, not one shared by several."""
    from app import create_app
    from services.logging_context import configure_logging
    from services.partner_center import PartnerCenterClient, StaticTokenProvider
    from services.settings import Settings
    from startup.partner_center import PartnerCenter

    url, token = os.environ["TEST_SANDBOX_URL"], os.environ["TEST_SANDBOX_TOKEN"]

    @asynccontextmanager
    async def shared_sandbox(settings: Settings) -> AsyncIterator[PartnerCenter]:
        async with aiohttp.ClientSession() as session:
            yield PartnerCenter(
                PartnerCenterClient(
                    session,
                    base_url=url,
                    price_sheet_url=url,
                    tokens=StaticTokenProvider(token),
                    request_timeout=settings.partner_center_timeout_seconds,
                )
            )

    settings = Settings()
    configure_logging(settings.log_level)
    app = create_app(settings, partner_center=shared_sandbox)
    web.run_app(app, host=settings.host, port=settings.port, print=None)


if __name__ == "__main__":
    _serve_sharing_a_sandbox()
