"""Billing benchmark: an organisation with N subscriptions and 24 cycles of ledger.

    .venv/bin/python bench/billing.py        # 10, 1,000 and 2,000 subscriptions; SQLite and PostgreSQL
    .venv/bin/python bench/billing.py --sizes 1000 --databases sqlite

PostgreSQL: BENCH_POSTGRES_DSN (default postgresql://postgres@127.0.0.1:5432/test); each run makes its
own database and drops it. Each size runs in its own child process (peak RSS is per process) on a
fresh database. Prints the figures; asserts nothing.

What each figure is compared with, in the same child process (so the machine's load is the same):

* **issuing 24 cycles** the first time (rating + storing ~29 lines per subscription) — against a
  *floor*: a plain Core bulk insert of the same number of report lines (the same rows, chunked the
  same way) into the same table, which no issuance can beat. Also the rating alone: the one-pass
  `rate_cycles` against 24 calls of the per-cycle `rate_cycle` (still the code that rates the open
  cycle and the change previews), with the check that both give the same lines.
* **the report card** of last month (stored) — against the same card at 10 subscriptions.
* **the XLSX export** of the 24 cycles (read + write) — against a plain read of the same line rows
  (Core, tuples, nothing converted): the least an export must do.
* **peak RSS** (`getrusage`) — against the child's RSS after its imports, before any data.

Wall times on a shared machine include waiting for a core, so each phase also prints this process's
CPU time (and, on PostgreSQL, the CPU of its server processes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import delete, insert, select  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bench.databases import POSTGRES_ADMIN_DSN, postgres_database  # noqa: E402
from cards.billing import build_report_card  # noqa: E402
from dialogs.billing import report_view  # noqa: E402
from services.access import Caller  # noqa: E402
from services.alerts import AlertService  # noqa: E402
from services.billing import service as billing_service  # noqa: E402
from services.billing.export import to_xlsx  # noqa: E402
from services.billing.rating import PriceIndex, rate_cycle, rate_cycles  # noqa: E402
from services.billing.service import BillingService  # noqa: E402
from services.clock import Clock  # noqa: E402
from services.db import create_engine, create_session_factory  # noqa: E402
from services.ledger import LedgerEvent, LedgerRecord, LedgerSource, SubscriptionLedger  # noqa: E402
from services.migrate import upgrade_database  # noqa: E402
from services.models import BillingReportLineRow, BillingReportRow, LedgerEntry  # noqa: E402
from services.organisations import OrganisationService  # noqa: E402
from services.price_rules import PriceScope, UnitPrice  # noqa: E402

IMPORTED_RSS_MB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PRODUCTS = [(f"CFQ7TTC0{n:04d}", "0001", f"Product {n}") for n in range(20)]
TARGETS = {"issue_s": 3.0, "card_ms": 150.0, "xlsx_s": 1.0, "rss_mb": 200.0}
RSS_TARGET_SUBS = 2000
T = TypeVar("T")


class Prices:
    def __init__(self) -> None:
        self.entries = [
            UnitPrice(n, PriceScope.GLOBAL, p, s, "P1M", "monthly", "EUR", Decimal("10.00") + n, date(2020, 1, 1))
            for n, (p, s, _) in enumerate(PRODUCTS)
        ]

    async def entries_for(self, organisation_id: int) -> list[UnitPrice]:  # noqa: ARG002 - every organisation gets the one list
        return self.entries


def _ledger(organisation_id: int, subs: int, numbers: range | None = None) -> list[LedgerRecord]:
    """The ledger of `subs` subscriptions (or of those numbered `numbers`)."""
    records = []
    for n in numbers if numbers is not None else range(subs):
        product = PRODUCTS[n % len(PRODUCTS)]
        base = LedgerRecord(
            organisation_id, f"sub-{n:05d}", None, LedgerEvent.PURCHASE,
            datetime(2024, 11, 1 + n % 28, 9, tzinfo=UTC), f"{product[0]}:{product[1]}:X", product[0], product[1],
            product[2], "P1M", "monthly", 0, 5, LedgerSource.SYNC, f"p-{n}",
        )  # fmt: skip
        records.append(base)
        # a quantity change every few months
        quantity = 5
        for k, month in enumerate(range(3, 24, 5)):
            year, mon = 2024 + (10 + month) // 12, (10 + month) % 12 + 1
            kind = LedgerEvent.QUANTITY_INCREASE if k % 2 == 0 else LedgerEvent.QUANTITY_DECREASE
            after = quantity + 2 if kind is LedgerEvent.QUANTITY_INCREASE else quantity - 1
            records.append(
                replace(
                    base,
                    event_type=kind,
                    effective_at=datetime(year, mon, 1 + (n + k) % 27, 10, tzinfo=UTC),
                    quantity_before=quantity,
                    quantity_after=after,
                    source_key=f"c-{n}-{k}",
                )  # fmt: skip
            )
            quantity = after
    return records


def _ledger_row(record: LedgerRecord) -> dict[str, Any]:
    return {
        "organisation_id": record.organisation_id,
        "subscription_id": record.subscription_id,
        "parent_subscription_id": record.parent_subscription_id,
        "event_type": record.event_type.value,
        "effective_at": record.effective_at,
        "offer_id": record.offer_id,
        "product_id": record.product_id,
        "sku_id": record.sku_id,
        "product_name": record.product_name,
        "term_duration": record.term_duration,
        "billing_cycle": record.billing_cycle,
        "quantity_before": record.quantity_before,
        "quantity_after": record.quantity_after,
        "source": record.source.value,
        "source_key": record.source_key,
        "actor": "",
        "recorded_at": NOW,
    }


@contextlib.asynccontextmanager
async def _database(kind: str, folder: str) -> AsyncIterator[tuple[str, str | None]]:
    """(URL, PostgreSQL database name or None) of a fresh database, dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{folder}/bench.sqlite3", None
        return
    async with postgres_database("bench_billing") as (url, name):
        yield url, name


async def _server_cpu(name: str | None) -> float:
    """CPU seconds used so far by the PostgreSQL server processes connected to database `name`."""
    if name is None:
        return 0.0
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        pids = [row[0] for row in await admin.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", name)]
    finally:
        await admin.close()
    return sum(_process_cpu(pid) for pid in pids)


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of process `pid` (0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Timer:
    def __init__(self, database: str | None) -> None:
        self.database = database

    async def run(self, work: Callable[[], Awaitable[T]]) -> tuple[T, dict[str, float]]:
        """`work`'s result and its wall time, this process's CPU time and the server's CPU time."""
        server = await _server_cpu(self.database)
        cpu, wall = time.process_time(), time.perf_counter()
        result = await work()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return result, {
            "wall": wall,
            "cpu": cpu,
            "server_cpu": await _server_cpu(self.database) - server,
            "peak_rss_mb": _rss_mb(),  # so far in this process
        }


async def _sync(work: Callable[[], T]) -> T:
    return work()


async def _rating(
    ledger: SubscriptionLedger, billing: BillingService, organisation_id: int, timer: Timer
) -> dict[str, Any]:
    """The rating alone, both ways, on the ledger as stored (the per-cycle way is what issuing did before)."""
    stored = await ledger.entries(organisation_id)
    calendar = await billing.calendar()
    cycles = calendar.cycles_ending_in((2024, 11), (2026, 10))
    index = PriceIndex(Prices().entries)
    out: dict[str, Any] = {}
    one_pass, out["rate_one_pass"] = await timer.run(
        lambda: _sync(lambda: rate_cycles(stored, index, calendar, cycles))
    )
    per_cycle, out["rate_per_cycle"] = await timer.run(
        lambda: _sync(lambda: {cycle: rate_cycle(stored, index, calendar, cycle) for cycle in cycles})
    )
    out["rating_identical"] = one_pass == per_cycle
    return out


async def run(subs: int, kind: str) -> dict[str, Any]:
    # As app.py does once started: the imported modules never become garbage, so the collector skips them.
    gc.collect()
    gc.freeze()
    out: dict[str, Any] = {"subs": subs, "database": kind, "imported_rss_mb": IMPORTED_RSS_MB}
    with tempfile.TemporaryDirectory() as folder:
        async with _database(kind, folder) as (url, name):
            engine = create_engine(url)
            try:
                out.update(await _measure(engine, subs, Timer(name)))
            finally:
                await engine.dispose()
    return out


def _rss_mb() -> float:
    """This process's peak RSS so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _measure(engine: AsyncEngine, subs: int, timer: Timer) -> dict[str, Any]:
    await upgrade_database(engine)
    sessions = create_session_factory(engine)
    org = await OrganisationService(sessions).create("bench", {"name": "Bench Ltd"}, actor="bench")
    out: dict[str, Any] = {"ledger_entries": 0}
    # The ledger goes in a few hundred subscriptions at a time: the set-up never holds all of it.
    for first in range(0, subs, 500):
        rows = [_ledger_row(record) for record in _ledger(org.id, subs, range(first, min(first + 500, subs)))]
        async with sessions.begin() as session:
            await session.execute(insert(LedgerEntry), rows)
        out["ledger_entries"] += len(rows)
    del rows
    out["setup_rss_mb"] = _rss_mb()
    ledger = SubscriptionLedger(sessions)
    billing = BillingService(sessions, ledger, Prices(), AlertService(sessions), clock=Clock(lambda: NOW))
    caller = Caller(1, org.id, "Bench Ltd", "b@bench.example", "Bench", frozenset({"admin"}))

    # ---- what the app does (the peak RSS is taken after these) ----
    issued, out["issue"] = await timer.run(lambda: billing.months(caller, (2024, 11), (2026, 10)))
    out["lines"] = sum(len(report.lines) for report in issued)
    del issued

    async def card() -> int:
        report = await billing.last_month(caller)
        return len(json.dumps(build_report_card(report_view([report], "Bench Ltd", "last month"))))

    out["card_bytes"], out["card"] = await timer.run(card)

    async def open_card() -> None:
        (current,) = await billing.months(caller, (2026, 11), (2026, 11))
        build_report_card(report_view([current], "Bench Ltd", "this month"))

    _, out["open_card"] = await timer.run(open_card)

    async def xlsx() -> int:
        return len(to_xlsx(await billing.months(caller, (2024, 11), (2026, 10))))

    out["xlsx_bytes"], out["xlsx"] = await timer.run(xlsx)
    out["rss_mb"] = _rss_mb()

    # ---- the baselines ----
    out.update(await _rating(ledger, billing, org.id, timer))
    lines = BillingReportLineRow.__table__

    async def plain_read() -> int:
        async with sessions() as session:
            return len((await session.execute(select(lines))).all())

    _, out["read_floor"] = await timer.run(plain_read)

    # The floor of issuing: the same line rows, inserted again in plain Core bulk inserts, chunked as
    # the service does, under one scratch report (removed afterwards). Only the inserts are timed.
    async with sessions.begin() as session:
        scratch = (
            await session.execute(
                insert(BillingReportRow.__table__)
                .values(organisation_id=org.id, cycle_start=date(1999, 12, 1), cycle_end=date(1999, 12, 31))
                .returning(BillingReportRow.__table__.c.id)
            )
        ).scalar_one()
        copies = [{**row._mapping, "report_id": scratch} for row in (await session.execute(select(lines))).all()]
    for copy in copies:
        del copy["id"]

    async def floor_insert() -> None:
        async with sessions.begin() as session:
            chunk = billing_service.INSERT_CHUNK
            for first in range(0, len(copies), chunk):
                await session.execute(insert(lines), copies[first : first + chunk])

    _, out["insert_floor"] = await timer.run(floor_insert)
    async with sessions.begin() as session:
        await session.execute(delete(BillingReportRow).where(BillingReportRow.cycle_end == date(1999, 12, 31)))
    return out


# ---- the parent: one child per database and size, then the table ----------------------------------------


def _time(figure: dict[str, float], unit: str = "s") -> str:
    """'1.23 s (CPU 0.80 s + server 0.30 s)', or in milliseconds."""

    def text(seconds: float) -> str:
        return f"{seconds * 1000:.0f} ms" if unit == "ms" else f"{seconds:.2f} s"

    cpu = f"CPU {text(figure['cpu'])}"
    if figure.get("server_cpu"):
        cpu += f" + server {text(figure['server_cpu'])}"
    return f"{text(figure['wall'])} ({cpu})"


def _ratio(value: float, base: float) -> str:
    return f"{value / base:.1f}×" if base > 0 else "n/a"


def _verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "MISS"


def report(rows: list[dict[str, Any]], base: dict[str, dict[str, Any]]) -> None:
    for row in rows:
        kind, subs = row["database"], row["subs"]
        small = base.get(kind)
        print(  # noqa: T201
            f"[{kind}] {subs:,} subscriptions, {row['ledger_entries']:,} ledger entries, {row['lines']:,} lines"
        )
        issue, floor = row["issue"], row["insert_floor"]
        print(  # noqa: T201
            f"  issue 24 cycles    {_time(issue)}; floor (plain bulk insert of {row['lines']:,} rows) "
            f"{_time(floor)}: {_ratio(issue['wall'], floor['wall'])} floor wall, "
            f"{_ratio(issue['cpu'], floor['cpu'])} CPU; target ≤ {TARGETS['issue_s']:.0f} s: "
            f"{_verdict(issue['wall'], TARGETS['issue_s'])}"
        )
        one, per = row["rate_one_pass"], row["rate_per_cycle"]
        print(  # noqa: T201
            f"  rating alone       one pass CPU {one['cpu']:.2f} s; 24 per-cycle replays CPU {per['cpu']:.2f} s: "
            f"{_ratio(one['cpu'], per['cpu'])}; same lines: {'yes' if row['rating_identical'] else 'NO'}"
        )
        card = row["card"]
        line = f"  report card        {_time(card, 'ms')}"
        if small is not None and small is not row:
            line += f"; at {small['subs']} subscriptions {small['card']['wall'] * 1000:.0f} ms: "
            line += _ratio(card["wall"], small["card"]["wall"])
        print(f"{line}; target ≤ {TARGETS['card_ms']:.0f} ms: {_verdict(card['wall'] * 1000, TARGETS['card_ms'])}")  # noqa: T201
        opened = row["open_card"]
        line = f"  open cycle's card  {_time(opened, 'ms')} (rated live; no target)"
        if small is not None and small is not row:
            line += f"; at {small['subs']} subscriptions {small['open_card']['wall'] * 1000:.0f} ms"
        print(line)  # noqa: T201
        xlsx, read = row["xlsx"], row["read_floor"]
        print(  # noqa: T201
            f"  XLSX of 24 cycles  {_time(xlsx)}, {row['xlsx_bytes'] / 1024:.0f} KB; floor (plain read of the "
            f"lines) {_time(read)}: {_ratio(xlsx['wall'], read['wall'])}; target ≤ {TARGETS['xlsx_s']:.0f} s: "
            f"{_verdict(xlsx['wall'], TARGETS['xlsx_s'])}"
        )
        rss = row["rss_mb"]
        line = (
            f"  peak RSS           {rss:.0f} MB (after issuing {row['issue']['peak_rss_mb']:.0f} MB, the cards "
            f"{row['open_card']['peak_rss_mb']:.0f} MB); after imports {row['imported_rss_mb']:.0f} MB "
            f"(+{rss - row['imported_rss_mb']:.0f} MB), after the set-up {row['setup_rss_mb']:.0f} MB"
        )
        if subs == RSS_TARGET_SUBS:
            line += f"; target ≤ {TARGETS['rss_mb']:.0f} MB: {_verdict(rss, TARGETS['rss_mb'])}"
        print(line)  # noqa: T201


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=f"10,1000,{RSS_TARGET_SUBS}", help="subscription counts (10 = the baseline)")
    parser.add_argument("--databases", default="sqlite,postgres", help="sqlite,postgres")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        kind, subs = args.one.split(":")
        print(json.dumps(asyncio.run(run(int(subs), kind))))  # noqa: T201
        return
    sizes = sorted({int(size) for size in args.sizes.split(",")})
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(  # noqa: T201
        f"billing benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"load average {' '.join(load)} at the start"
    )
    rows, base = [], {}
    for kind in args.databases.split(","):
        for subs in sizes:
            child = subprocess.run(
                [sys.executable, __file__, "--one", f"{kind}:{subs}"], capture_output=True, text=True, check=True
            )
            row = json.loads(child.stdout.strip().splitlines()[-1])
            base.setdefault(kind, row)
            rows.append(row)
            report([row], base)
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"load average {' '.join(load)} at the end")  # noqa: T201


if __name__ == "__main__":
    main()
