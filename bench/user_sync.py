"""Users sync benchmark: a full sync of a 10,000-user tenant against a slow Microsoft (the sandbox
answering every call after 200 ms), with USERS_SYNC_CONCURRENCY requests in flight, beside the same
full sync made one request at a time (USERS_SYNC_CONCURRENCY=1) in the same run as the baseline.

Run from the repository root:

    .venv/bin/python bench/user_sync.py                          # 10,000 users, 200 ms a call
    .venv/bin/python bench/user_sync.py --users 2000 --latency-ms 0 --licensed 0

The bot side (the real Partner Center client and the real `UserSync`, on a temporary SQLite file)
runs in this process; the sandbox runs in a child process on a loopback port (its clock frozen, a
`latency` fault on every call), so Microsoft's own work is not done on the bot's event loop — the
sandbox answers subscribed SKUs by reading every user, which in one process would stall the listing.
The CPU printed is this process's. `--licensed` users had a licence assigned in Microsoft's records
(audit records of the last 89 days), so a first sync fetches each one's licences: Partner Center has
no bulk call for that. Each full sync starts from an empty copy. Requests are counted at the client's
HTTP session: the budget counts user-list pages and subscribed-SKU calls (target: at most one per 100
users); audit-record pages and per-user licence reads are printed separately. This program prints
figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aiohttp
from sqlalchemy import delete

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import SandboxClock, SandboxSettings, start_sandbox  # noqa: E402
from sandbox.faults import FaultRule  # noqa: E402
from sandbox.runtime import RUNTIME  # noqa: E402
from services.clock import Clock  # noqa: E402
from services.container import (
    Services,  # noqa: E402
    build_services,  # noqa: E402
)
from services.db import create_engine  # noqa: E402
from services.migrate import upgrade_database  # noqa: E402
from services.models import TenantUser, UserSyncState  # noqa: E402
from services.partner_center import PartnerCenterClient, StaticTokenProvider  # noqa: E402
from services.settings import Settings  # noqa: E402
from services.users.sync import DEFAULT_CONCURRENCY, SyncResult  # noqa: E402
from tests.conftest import link_demo_customer  # noqa: E402
from tests.users_support import BASIC, BASIC_LICENCE, buy_licences  # noqa: E402

TOKEN = "bench-token"
FROZEN_AT = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
TARGET_SECONDS = 5.0
USERS_PER_REQUEST = 100


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


def _kind(path: str) -> str:
    if path.endswith("/users"):
        return "user pages"
    if path.endswith("/subscribedskus"):
        return "subscribed SKUs"
    if "/auditrecords" in path:
        return "audit pages"
    if path.endswith("/licenses"):
        return "user licences"
    return "other"


async def _seed(runtime: object, customer_id: str, count: int, licensed: int) -> None:
    """`count` users; every (count / licensed)th one holds a licence, recorded as Microsoft records an
    assignment (an audit record of resource type `license` naming the user). Written straight into the
    sandbox's store: its licence update counts every user's licences first, 10,000 rows a call."""
    backend = runtime.backend  # type: ignore[attr-defined]
    step = max(1, count // licensed) if licensed else 0
    async with backend.transaction() as tx:
        customer = await backend.customers.get(tx, customer_id)
        chosen = 0
        for index in range(count):
            user = await backend.users.new_user(
                tx,
                customer,
                upn=f"user{index:05}@{customer['domain']}",
                first="User",
                last=f"{index:05}",
                display=f"User {index:05}",
                usage_location="US",
            )
            if step and index % step == 0 and chosen < licensed:
                chosen += 1
                user["licenses"] = [BASIC_LICENCE]
                await tx.put("user", user["id"], user, customer_id=customer["id"])
                assigned = {"licensesToAssign": [{"skuId": BASIC_LICENCE}], "licenseWarnings": []}
                await backend.core.audit(
                    tx,
                    customer,
                    "license",
                    "update_customer_user_licenses",
                    assigned,
                    data={"CustomerUserId": user["id"], "AddedLicenseSkuId-0": BASIC_LICENCE},
                )


async def serve_sandbox(database: str) -> None:
    """The child process: serve the sandbox and obey one JSON command a line on stdin (`seed`,
    `latency`), answering one line each on stdout; stops when stdin closes."""
    sandbox = await start_sandbox(
        database_url=f"sqlite+aiosqlite:///{database}",
        accepted_token=TOKEN,
        clock=SandboxClock(frozen_at=FROZEN_AT),
        settings=SandboxSettings(availability_salt="bench"),
    )
    runtime = sandbox.runner.app[RUNTIME]
    loop = asyncio.get_running_loop()
    out(json.dumps({"url": sandbox.url}))
    sys.stdout.flush()
    try:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            if command["do"] == "seed":
                await _seed(runtime, command["customer"], command["users"], command["licensed"])
            elif command["do"] == "latency" and command["ms"]:
                runtime.faults.add(FaultRule(kind="latency", nth=None, rate=1.0, latency_ms=command["ms"]))
            out(json.dumps({"done": command["do"], "cpu": time.process_time()}))
            sys.stdout.flush()
    finally:
        await sandbox.close()


class SandboxProcess:
    """The sandbox in a child process (`serve_sandbox`), told what to do one line at a time."""

    def __init__(self, child: asyncio.subprocess.Process, url: str) -> None:
        self.child, self.url = child, url

    @classmethod
    async def start(cls, database: Path) -> SandboxProcess:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve-sandbox",
            str(database),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        url = json.loads(await child.stdout.readline())["url"]
        return cls(child, url)

    async def tell(self, **command: object) -> float:
        """Do `command`; returns the child's CPU seconds so far."""
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write((json.dumps(command) + "\n").encode())
        await self.child.stdin.drain()
        answer = json.loads(await self.child.stdout.readline())
        assert answer["done"] == command["do"], answer
        return float(answer["cpu"])

    async def close(self) -> None:
        assert self.child.stdin is not None
        self.child.stdin.close()
        await self.child.wait()


async def _forget_copy(services: Services, organisation_id: int) -> None:
    async with services.sessions.begin() as session:
        await session.execute(delete(TenantUser).where(TenantUser.organisation_id == organisation_id))
        await session.execute(delete(UserSyncState).where(UserSyncState.organisation_id == organisation_id))


async def run(users: int, latency_ms: int, licensed: int, concurrency: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-user-sync-"))
    sandbox = await SandboxProcess.start(folder / "sandbox.sqlite3")
    counts: collections.Counter[str] = collections.Counter()
    pages: list[tuple[float, float]] = []  # (sent, answered) of each user-list request
    trace = aiohttp.TraceConfig()

    async def on_start(_session: object, context: SimpleNamespace, _params: aiohttp.TraceRequestStartParams) -> None:
        context.sent = time.perf_counter()

    async def on_end(_session: object, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        kind = _kind(params.url.path)
        counts[kind] += 1
        if kind == "user pages":
            pages.append((context.sent, time.perf_counter()))

    trace.on_request_start.append(on_start)
    trace.on_request_end.append(on_end)
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bot.sqlite3'}")
    try:
        await upgrade_database(engine)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            client = PartnerCenterClient(
                session,
                base_url=sandbox.url,
                price_sheet_url=sandbox.url,
                tokens=StaticTokenProvider(TOKEN),
            )
            settings = Settings(database_url=str(engine.url), mail_outbox_dir=folder / "outbox")
            services = build_services(engine, settings, client, Clock(SandboxClock(frozen_at=FROZEN_AT).now))
            org = await link_demo_customer(services)
            assert org.partner_center_customer_id
            started = time.perf_counter()
            if licensed:
                await buy_licences(services, org, BASIC, licensed)
            await sandbox.tell(do="seed", customer=org.partner_center_customer_id, users=users - 1, licensed=licensed)
            out(
                f"seeded {users - 1} users (+ the tenant admin), {licensed} of them licensed elsewhere, "
                f"in {time.perf_counter() - started:.1f} s"
            )
            await sandbox.tell(do="latency", ms=latency_ms)
            out(f"Partner Center answers every call after {latency_ms} ms")

            sync = services.user_sync

            async def timed(label: str, width: int) -> tuple[float, SyncResult]:
                await _forget_copy(services, org.id)
                sync.concurrency = width
                counts.clear()
                pages.clear()
                microsoft = await sandbox.tell(do="cpu")
                started, cpu = time.perf_counter(), time.process_time()
                result = await sync.sync(org.id)
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                microsoft = await sandbox.tell(do="cpu") - microsoft
                budget = counts["user pages"] + counts["subscribed SKUs"]
                out(
                    f"{label:34} {elapsed:6.2f} s (CPU: bot {cpu:.2f} s, sandbox {microsoft:.2f} s)  "
                    f"users seen {result.seen:6}  created {result.created:6}  "
                    f"licences refreshed {result.licence_users_refreshed}  "
                    f"budget requests {budget} (user pages {counts['user pages']}, subscribed SKUs "
                    f"{counts['subscribed SKUs']})  other: audit pages {counts['audit pages']}, user licences "
                    f"{counts['user licences']}, other {counts['other']}"
                )
                waiting = sum(answered - sent for sent, answered in pages)
                span = pages[-1][1] - pages[0][0] if pages else 0.0
                out(
                    f"  the listing: {span:.2f} s from its first request to its last answer, of which "
                    f"{waiting:.2f} s waiting for the {len(pages)} pages and {span - waiting:.2f} s between "
                    f"them (the bot's turn); {elapsed - span:.2f} s of the sync outside it"
                )
                assert result.complete, "the sync did not complete"
                return elapsed, result

            fast, result = await timed(f"full sync, {concurrency} in flight", concurrency)
            slow, baseline = await timed("full sync, one request at a time", 1)
            same = (result.seen, result.created, result.licence_users_refreshed) == (
                baseline.seen,
                baseline.created,
                baseline.licence_users_refreshed,
            )
            limit = max(1, users // USERS_PER_REQUEST)
            budget = counts["user pages"] + counts["subscribed SKUs"]
            out(f"  time   {'PASS' if fast <= TARGET_SECONDS else 'MISS'} ({fast:.2f} s; target <= {TARGET_SECONDS} s)")
            out(f"  budget {'PASS' if budget <= limit else 'MISS'} (target <= {limit} requests)")
            out(f"  one request at a time / {concurrency} in flight: {slow / fast:.2f}x  (same counts: {same})")
            sync.concurrency = concurrency
            counts.clear()
            started = time.perf_counter()
            again = await sync.sync(org.id)
            out(
                f"{'no-change re-sync':34} {time.perf_counter() - started:6.2f} s  users seen {again.seen:6}  "
                f"licences refreshed {again.licence_users_refreshed}  requests {sum(counts.values())}"
            )
    finally:
        await engine.dispose()
        await sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--latency-ms", type=int, default=200, help="Microsoft's answer time per call")
    parser.add_argument("--licensed", type=int, default=100, help="users licensed elsewhere in the last 89 days")
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="USERS_SYNC_CONCURRENCY")
    parser.add_argument("--serve-sandbox", metavar="DATABASE", help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.serve_sandbox:
        asyncio.run(serve_sandbox(args.serve_sandbox))
    else:
        asyncio.run(run(args.users, args.latency_ms, args.licensed, args.concurrency))


if __name__ == "__main__":
    main()
