"""Users sync benchmark: a full sync of a 10,000-user tenant against the sandbox, then a no-change
re-sync in the same run as the baseline.

Run from the repository root:

    .venv/bin/python bench/user_sync.py              # 10,000 users
    .venv/bin/python bench/user_sync.py --users 2000

Everything runs in this process on temporary SQLite files: the sandbox (served on a loopback port,
its clock frozen), the real Partner Center client and the real `UserSync`. Requests are counted at
the client's HTTP session: the budget counts user-list pages and subscribed-SKU calls (target: at
most one per 100 users); audit-record pages and per-user licence reads are printed separately.
The sandbox's own work is inside the measured time. This program prints figures and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sandbox import SandboxClock, SandboxSettings, start_sandbox  # noqa: E402
from sandbox.runtime import RUNTIME  # noqa: E402
from services.container import build_services  # noqa: E402
from services.db import create_engine  # noqa: E402
from services.migrate import upgrade_database  # noqa: E402
from services.partner_center import PartnerCenterClient, StaticTokenProvider  # noqa: E402
from services.settings import Settings  # noqa: E402
from tests.conftest import link_demo_customer  # noqa: E402

TOKEN = "bench-token"
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


async def _seed(runtime: object, customer_id: str, count: int) -> None:
    backend = runtime.backend  # type: ignore[attr-defined]
    async with backend.transaction() as tx:
        customer = await backend.customer(tx, customer_id)
        for index in range(count):
            await backend._new_user(
                tx,
                customer,
                upn=f"user{index:05}@{customer['domain']}",
                first="User",
                last=f"{index:05}",
                display=f"User {index:05}",
                usage_location="US",
            )


async def run(users: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-user-sync-"))
    sandbox = await start_sandbox(
        database_url=f"sqlite+aiosqlite:///{folder / 'sandbox.sqlite3'}",
        accepted_token=TOKEN,
        clock=SandboxClock(frozen_at=datetime(2026, 11, 16, 9, 0, tzinfo=UTC)),
        settings=SandboxSettings(availability_salt="bench"),
    )
    counts: collections.Counter[str] = collections.Counter()
    trace = aiohttp.TraceConfig()

    async def on_end(session: object, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams) -> None:
        counts[_kind(params.url.path)] += 1

    trace.on_request_end.append(on_end)
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'bot.sqlite3'}")
    try:
        await upgrade_database(engine)
        async with aiohttp.ClientSession(trace_configs=[trace]) as session:
            client = PartnerCenterClient(
                session, base_url=sandbox.url, price_sheet_url=sandbox.url, tokens=StaticTokenProvider(TOKEN)
            )
            settings = Settings(database_url=str(engine.url), mail_outbox_dir=folder / "outbox")
            services = build_services(engine, settings, client)
            org = await link_demo_customer(services)
            assert org.partner_center_customer_id
            started = time.perf_counter()
            await _seed(sandbox.runner.app[RUNTIME], org.partner_center_customer_id, users - 1)
            out(f"seeded {users - 1} users (+ the tenant admin) in {time.perf_counter() - started:.1f} s")

            for label in ("full sync", "no-change re-sync"):
                counts.clear()
                started, cpu = time.perf_counter(), time.process_time()
                result = await services.user_sync.sync(org.id)
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
                budget = counts["user pages"] + counts["subscribed SKUs"]
                out(
                    f"{label:18} {elapsed:6.2f} s (CPU {cpu:.2f} s, sandbox included)  "
                    f"users seen {result.seen:6}  created {result.created:6}  "
                    f"removed {result.removed}  budget requests {budget} (user pages {counts['user pages']}, "
                    f"subscribed SKUs {counts['subscribed SKUs']})  other: audit pages {counts['audit pages']}, "
                    f"user licences {counts['user licences']}, other {counts['other']}"
                )
                if label == "full sync":
                    full = elapsed
                    limit = max(1, users // USERS_PER_REQUEST)
                    out(f"  time   {'PASS' if elapsed <= TARGET_SECONDS else 'MISS'} (target <= {TARGET_SECONDS} s)")
                    out(f"  budget {'PASS' if budget <= limit else 'MISS'} (target <= {limit} requests)")
                else:
                    out(f"  full sync / no-change re-sync: {full / elapsed:.2f}x")
    finally:
        await engine.dispose()
        await sandbox.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(run(args.users))


if __name__ == "__main__":
    main()
