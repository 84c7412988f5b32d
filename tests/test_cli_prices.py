# ruff: noqa: F811  (the `db` fixture is imported from test_cli)
"""`cspbot prices` and `cspbot catalog`, in-process on a temporary SQLite database and the CLI's own
sandbox: CSV round trip (CSV in = CSV out), assignment, markup generation, the unpriced report and
alert, catalog sync and taxonomy edits, and clear errors."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import Db, db, ok, run  # noqa: F401  (the fixture)

CSV = (
    "product_id,sku_id,term_duration,billing_cycle,currency,unit_price,valid_from,valid_to\n"
    "CFQ7TTC0LDPB,0001,P1Y,annual,EUR,132.00,2026-01-01,2026-12-31\n"
    "CFQ7TTC0LH18,0001,P1M,monthly,EUR,7.20,2026-01-01,\n"
    "CFQ7TTC0LH18,0001,P1Y,monthly,EUR,5.9125,2026-01-01,\n"
)


def test_import_export_round_trip_and_assignment(capsys: pytest.CaptureFixture[str], db: Db, tmp_path: Path) -> None:
    source = tmp_path / "special.csv"
    source.write_text(CSV, encoding="utf-8")
    assert "3 added" in ok(capsys, "prices", "import", "special", str(source))
    assert ok(capsys, "prices", "export", "special") == CSV
    out = tmp_path / "out.csv"
    ok(capsys, "prices", "export", "special", "--out", str(out))
    assert out.read_text(encoding="utf-8") == CSV
    assert "0 added, 0 changed, 3 unchanged" in ok(capsys, "prices", "import", "special", str(out))

    ok(capsys, "org", "create", "fabrikam", "--name", "Fabrikam")
    assert "fabrikam now pays the prices of list special" in ok(capsys, "prices", "assign", "fabrikam", "special")
    listed = json.loads(ok(capsys, "prices", "lists", "--json"))
    assert listed == [
        {"id": listed[0]["id"], "name": "special", "is_global": False, "description": "", "entries": 3,
         "organisations": ["fabrikam"]}
    ]  # fmt: skip
    assert "global prices" in ok(capsys, "prices", "unassign", "fabrikam")
    with sqlite3.connect(db.path) as connection:
        actions = [row[0] for row in connection.execute("SELECT action FROM audit_log WHERE actor = 'operator:opsy'")]
    assert {"price_list.import", "price_list.assign"} <= set(actions)


@pytest.mark.usefixtures("db")
def test_bad_csv_and_unknown_names_are_one_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(CSV + "CFQ7TTC0LH18,0001,P1Y,weekly,EUR,1,2026-01-01,\n", encoding="utf-8")
    result = run(capsys, "prices", "import", "global", str(bad))
    assert result.code == 1 and "Nothing was imported" in result.err and "line 5" in result.err
    assert run(capsys, "prices", "import", "global", str(tmp_path / "missing.csv")).code == 1
    result = run(capsys, "prices", "export", "nope")
    assert result.code == 1 and "No price list named 'nope'" in result.err
    assert run(capsys, "prices", "assign", "nobody", "nope").code == 1
    assert run(capsys, "prices", "generate", "--markup", "lots").code == 1


@pytest.mark.usefixtures("db")
def test_generate_sync_unpriced_and_taxonomy(capsys: pytest.CaptureFixture[str]) -> None:
    synced = run(capsys, "catalog", "sync")  # the unpriced alert is logged on stderr as well
    assert synced.code == 0 and "38 products" in synced.out
    assert re.search(r"^No global price: \d+ catalog items \(`cspbot prices unpriced`\)\.$", synced.out, re.M)
    unpriced = run(capsys, "prices", "unpriced").out
    assert re.search(r"^No price today, so not offered \(\d+ catalog items\):$", unpriced, re.M)
    alerts = ok(capsys, "alerts", "list")
    assert "unpriced_products" in alerts or "for want of a global price" in alerts

    out = ok(capsys, "prices", "generate", "--markup", "15%")
    assert "global from the US price sheet + 15%" in out
    assert "Every catalog item has a price" in ok(capsys, "prices", "unpriced")
    exported = ok(capsys, "prices", "export", "global")
    assert "CFQ7TTC0LH18,0001,P1Y,monthly,USD,5.52," in exported

    listing = ok(capsys, "catalog", "list")
    assert "Business › Microsoft 365" in listing and "CFQ7TTC0LH18  Microsoft 365 Business Basic" in listing
    assert "now under Small business › M365" in ok(
        capsys, "catalog", "place", "CFQ7TTC0LH18", "--category", "Small business", "--group", "M365"
    )
    assert "[operator]" in ok(capsys, "catalog", "list")
    assert "back under Business › Microsoft 365" in ok(capsys, "catalog", "reset", "CFQ7TTC0LH18")
    assert run(capsys, "catalog", "place", "NOPE", "--category", "A", "--group", "B").code == 1
