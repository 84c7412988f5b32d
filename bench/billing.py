"""Billing benchmark: an organisation with N subscriptions and 24 cycles of ledger.

    .venv/bin/python bench/billing.py            # 1,000 subscriptions (and a 10-subscription baseline)
    .venv/bin/python bench/billing.py --subs 200

Each size runs in its own subprocess (peak RSS is per process) on a fresh SQLite file. Figures:
issuing the 24 cycles the first time, the report card of last month (warm: stored), the open
cycle's card (rated live, with the adjustment check against every issued cycle), and the XLSX
export of 24 cycles. Targets: report card ≤ 300 ms, XLSX ≤ 2 s, peak RSS ≤ 250 MB.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from decimal import Decimal  # noqa: E402

from cards.billing import build_report_card  # noqa: E402
from dialogs.billing import report_view  # noqa: E402
from services.access import Caller  # noqa: E402
from services.alerts import AlertService  # noqa: E402
from services.billing.export import to_xlsx  # noqa: E402
from services.billing.service import BillingService  # noqa: E402
from services.db import create_engine, create_session_factory  # noqa: E402
from services.ledger import LedgerEvent, LedgerRecord, LedgerSource, SubscriptionLedger  # noqa: E402
from services.migrate import upgrade_database  # noqa: E402
from services.organisations import OrganisationService  # noqa: E402
from services.price_rules import PriceScope, UnitPrice  # noqa: E402

NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)
PRODUCTS = [(f"CFQ7TTC0{n:04d}", "0001", f"Product {n}") for n in range(20)]


class Prices:
    def __init__(self) -> None:
        self.entries = [
            UnitPrice(n, PriceScope.GLOBAL, p, s, "P1M", "monthly", "EUR", Decimal("10.00") + n, date(2020, 1, 1))
            for n, (p, s, _) in enumerate(PRODUCTS)
        ]

    async def entries_for(self, organisation_id: int) -> list[UnitPrice]:
        return self.entries


def _ledger(organisation_id: int, subs: int) -> list[LedgerRecord]:
    records = []
    for n in range(subs):
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


async def run(subs: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{folder}/bench.sqlite3")
        await upgrade_database(engine)
        sessions = create_session_factory(engine)
        organisations = OrganisationService(sessions)
        org = await organisations.create("bench", {"name": "Bench Ltd"}, actor="bench")
        ledger = SubscriptionLedger(sessions)
        async with sessions.begin() as session:
            for record in _ledger(org.id, subs):
                ledger.add(session, record)
        billing = BillingService(sessions, ledger, Prices(), AlertService(sessions), clock=lambda: NOW)
        caller = Caller(1, org.id, "Bench Ltd", "b@bench.example", "Bench", frozenset({"admin"}))

        started = time.perf_counter()
        await billing.months(caller, (2024, 11), (2026, 10))
        issue = time.perf_counter() - started

        started = time.perf_counter()
        report = await billing.last_month(caller)
        card = build_report_card(report_view([report], "Bench Ltd", "last month"))
        card_ms = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        (current,) = await billing.months(caller, (2026, 11), (2026, 11))
        build_report_card(report_view([current], "Bench Ltd", "this month"))
        open_ms = (time.perf_counter() - started) * 1000

        started = time.perf_counter()
        reports = await billing.months(caller, (2024, 11), (2026, 10))
        data = to_xlsx(reports)
        xlsx = time.perf_counter() - started
        await engine.dispose()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines = sum(len(r.lines) for r in reports)
    return {
        "subs": subs, "lines": lines, "issue_24_s": issue, "card_ms": card_ms, "open_cycle_ms": open_ms,
        "xlsx_s": xlsx, "xlsx_kb": len(data) / 1024, "card_kb": len(json.dumps(card)) / 1024, "rss_mb": rss,
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(asyncio.run(run(args.one))))  # noqa: T201
        return
    results = {}
    for size in (10, args.subs):
        out = subprocess.run([sys.executable, __file__, "--one", str(size)], capture_output=True, text=True, check=True)
        results[size] = json.loads(out.stdout.strip().splitlines()[-1])
    base, big = results[10], results[args.subs]
    for name, row in (("baseline", base), ("measured", big)):
        print(  # noqa: T201
            f"{name:9} subs={row['subs']:5} lines={row['lines']:6} issue 24 cycles={row['issue_24_s']:.2f}s "
            f"card={row['card_ms']:.0f}ms open-cycle card={row['open_cycle_ms']:.0f}ms xlsx={row['xlsx_s']:.2f}s "
            f"({row['xlsx_kb']:.0f} KB) card={row['card_kb']:.1f} KB peak RSS={row['rss_mb']:.0f} MB"
        )
    print(  # noqa: T201
        f"targets: card ≤ 300 ms: {'PASS' if big['card_ms'] <= 300 else 'MISS'}; "
        f"xlsx ≤ 2 s: {'PASS' if big['xlsx_s'] <= 2 else 'MISS'}; "
        f"RSS ≤ 250 MB: {'PASS' if big['rss_mb'] <= 250 else 'MISS'}; "
        f"ratio card {big['card_ms'] / max(base['card_ms'], 0.001):.1f}× baseline"
    )


if __name__ == "__main__":
    main()
