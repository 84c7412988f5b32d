"""Warnings benchmark: 500 organisations × 20 subscriptions (and 20 licensed users each) on a fresh
SQLite file; what is due is computed on the stored copy (no Partner Center calls: those are per
organisation and happen before, in a pass).

    .venv/bin/python bench/warnings.py                 # 500 organisations × 20 subscriptions
    .venv/bin/python bench/warnings.py --orgs 100 --rounds 5

Figures (best of `--rounds`): the **baseline** reads every row the warnings need (subscriptions,
licence pools, users, idle layers, settings, prices) with plain SELECTs and does nothing with them;
**compute** is the rules alone (`due_warnings` over every organisation's facts, in memory);
**facts + compute** is what a pass does before it claims and sends: `load_facts` (the same rows
into the rules' views, priced now and on each renewal day) and `due_warnings`. The ratio is
facts + compute ÷ baseline, from the same run. Target: facts + compute ≤ 2 s. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.db import create_engine, create_session_factory  # noqa: E402
from services.migrate import upgrade_database  # noqa: E402
from services.models import (  # noqa: E402
    LicenceIdleRow,
    LicencePool,
    Organisation,
    PriceEntryRow,
    PriceList,
    SubscriptionRow,
    TenantUser,
    WarningSettingRow,
)
from services.price_rules import PriceScope, UnitPrice  # noqa: E402
from services.warnings.rules import due_warnings  # noqa: E402
from services.warnings.service import WarningService  # noqa: E402
from services.warnings.settings import WarningSettingsStore  # noqa: E402

NOW = datetime(2027, 3, 10, 12, tzinfo=UTC)
PRODUCTS = [(f"CFQ7TTC0{n:04d}", "0001") for n in range(20)]
TARGET_SECONDS = 2.0


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")


class Prices:
    """The price book's bulk read, from the bench's own global list (no Partner Center needed)."""

    def __init__(self) -> None:
        self.entries = [
            UnitPrice(n + 1, PriceScope.GLOBAL, p, s, term, cycle, "USD", Decimal("6.00") + n, date(2020, 1, 1))
            for n, (p, s) in enumerate(PRODUCTS)
            for term, cycle in (("P1Y", "monthly"), ("P1M", "monthly"), ("P1Y", "annual"))
        ]

    async def entries_by_organisation(self) -> tuple[list[UnitPrice], dict[int, list[UnitPrice]]]:
        return self.entries, {}


def _subscription(org: int, n: int) -> dict[str, Any]:
    """A mix: a few seats still refundable (some windows closing), terms ending in the next months."""
    product, sku = PRODUCTS[n % len(PRODUCTS)]
    monthly = n % 4 == 0
    end = (NOW + timedelta(days=(n * 17 + org) % 360 + 1)).replace(hour=0, minute=0)
    refundable = (
        {
            "totalQuantity": 3,
            "details": [{"quantity": 3, "allowedUntilDateTime": (NOW + timedelta(hours=30)).isoformat()}],
        }
        if n % 5 == 0
        else {"totalQuantity": 0, "details": []}
    )
    return {
        "id": f"{org:04d}-{n:03d}-0000-0000-000000000000",
        "organisation_id": org,
        "customer_id": f"customer-{org}",
        "parent_subscription_id": None,
        "offer_id": f"{product}:{sku}:X",
        "product_id": product,
        "sku_id": sku,
        "name": f"Product {n}",
        "licence_sku_id": f"licence-{n % len(PRODUCTS):02d}",
        "quantity": 10 + n,
        "status": "active" if n % 9 else "suspended",
        "term_duration": "P1M" if monthly else "P1Y",
        "billing_cycle": "monthly",
        "auto_renew": n % 7 != 0,
        "commitment_end_date": end,
        "cancellation_allowed_until": NOW - timedelta(days=30),
        "refundable": refundable,
        "scheduled_quantity": 8 + n if n % 6 == 0 else None,
        "etag": "e",
        "created_at": NOW,
        "synced_at": NOW,
    }


async def _populate(sessions: Any, orgs: int, subs: int, users: int) -> None:
    async with sessions.begin() as session:
        await session.execute(
            insert(Organisation),
            [
                {"id": org, "slug": f"org-{org}", "name": f"Org {org}", "partner_center_customer_id": f"customer-{org}"}
                for org in range(1, orgs + 1)
            ],
        )
        await session.execute(
            insert(SubscriptionRow), [_subscription(o, n) for o in range(1, orgs + 1) for n in range(subs)]
        )
        await session.execute(
            insert(LicencePool),
            [
                {
                    "organisation_id": org,
                    "licence_sku_id": f"licence-{n:02d}",
                    "name": f"Licence {n}",
                    "active_units": 10 + n,
                    "consumed_units": 6 + n,
                    "synced_at": NOW,
                }
                for org in range(1, orgs + 1)
                for n in range(min(subs, len(PRODUCTS)))
            ],
        )
        await session.execute(
            insert(LicenceIdleRow),
            [
                {
                    "organisation_id": org,
                    "licence_sku_id": f"licence-{n:02d}",
                    "layers": [[4, (NOW - timedelta(days=40)).isoformat()]],
                    "updated_at": NOW,
                }
                for org in range(1, orgs + 1)
                for n in range(0, min(subs, len(PRODUCTS)), 3)
            ],
        )
        await session.execute(
            insert(TenantUser),
            [
                {
                    "organisation_id": org,
                    "user_id": f"user-{org}-{u}",
                    "user_principal_name": f"u{u}@org{org}.example",
                    "display_name": f"User {u}",
                    "licence_sku_ids": [f"licence-{u % len(PRODUCTS):02d}"],
                    "last_sign_in_at": NOW - timedelta(days=(u * 7) % 60),
                    "state": "active",
                    "seen_generation": 1,
                    "created_at": NOW,
                    "synced_at": NOW,
                }
                for org in range(1, orgs + 1)
                for u in range(users)
            ],
        )
        await session.execute(
            insert(WarningSettingRow),
            [
                {
                    "organisation_id": org,
                    "enabled": ["idle_licences", "renewal", "seat_window"],
                    "renewal_lead_days": [60, 30, 7],
                    "seat_window_hours": 48,
                    "idle_days": 30,
                    "excluded_skus": [],
                    "timezone": "UTC",
                    "updated_by": "bench",
                    "updated_at": NOW,
                }  # fmt: skip
                for org in range(1, orgs + 1, 10)
            ],
        )
        session.add(PriceList(id=1, name="global", is_global=True))
        await session.flush()
        await session.execute(
            insert(PriceEntryRow),
            [
                {
                    "price_list_id": 1,
                    "product_id": p.product_id,
                    "sku_id": p.sku_id,
                    "term_duration": p.term_duration,
                    "billing_cycle": p.billing_cycle,
                    "currency": "USD",
                    "amount": str(p.amount),
                    "valid_from": p.valid_from,
                    "created_at": NOW,
                    "updated_at": NOW,
                }  # fmt: skip
                for p in Prices().entries
            ],
        )


async def _baseline(sessions: Any) -> int:
    """Read every row the warnings read, and nothing more."""
    rows = 0
    async with sessions() as session:
        for model in (SubscriptionRow, LicencePool, LicenceIdleRow, WarningSettingRow, PriceEntryRow):
            rows += len((await session.execute(select(model))).all())
        rows += len(
            (
                await session.execute(
                    select(
                        TenantUser.organisation_id,
                        TenantUser.user_id,
                        TenantUser.display_name,
                        TenantUser.user_principal_name,
                        TenantUser.licence_sku_ids,
                        TenantUser.last_sign_in_at,
                    )
                )
            ).all()
        )
    return rows


async def run(orgs: int, subs: int, users: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{folder}/bench.sqlite3")
        await upgrade_database(engine)
        sessions = create_session_factory(engine)
        started = time.perf_counter()
        await _populate(sessions, orgs, subs, users)
        stored = time.perf_counter() - started
        out(f"{orgs} organisations × {subs} subscriptions, {users} users each: stored in {stored:.1f} s")
        warnings = WarningService.__new__(WarningService)  # only what the computation needs: no jobs, no client
        warnings.__dict__.update(_sessions=sessions, _pricing=Prices(), clock=lambda: NOW)
        warnings.settings = WarningSettingsStore(sessions)
        base_times, compute_times, full_times = [], [], []
        due = rows = 0
        for _ in range(rounds):
            started = time.perf_counter()
            rows = await _baseline(sessions)
            base_times.append(time.perf_counter() - started)

            started = time.perf_counter()
            facts = await warnings.load_facts(NOW)
            found = [warning for org_facts in facts.values() for warning in due_warnings(org_facts, NOW)]
            full_times.append(time.perf_counter() - started)
            due = len(found)

            started = time.perf_counter()
            for org_facts in facts.values():
                due_warnings(org_facts, NOW)
            compute_times.append(time.perf_counter() - started)
        await engine.dispose()
    base, compute, full = min(base_times), min(compute_times), min(full_times)
    kinds: dict[str, int] = {}
    for warning in found:
        kinds[warning.kind.value] = kinds.get(warning.kind.value, 0) + 1
    out(f"due now: {due} warnings ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))})")
    out(f"baseline (read the {rows} rows):            {base * 1000:8.0f} ms")
    out(f"compute (rules over the facts, in memory): {compute * 1000:8.0f} ms")
    out(f"facts + compute (what a pass does first):  {full * 1000:8.0f} ms")
    out(f"ratio facts + compute ÷ baseline: {full / base:.1f}×; compute alone ÷ baseline: {compute / base:.2f}×")
    verdict = "PASS" if full <= TARGET_SECONDS else "MISS"
    out(f"target facts + compute ≤ {TARGET_SECONDS:.0f} s: {verdict} (best of {rounds}; a loaded machine: noisy)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orgs", type=int, default=500)
    parser.add_argument("--subs", type=int, default=20)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.orgs, args.subs, args.users, args.rounds))


if __name__ == "__main__":
    main()
