"""`cspbot billing show | set-cycle`: the operator sets the reseller's cycle day and time zone."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import Db, audit_rows, db, ok, run  # noqa: F401  (db is a fixture)


def test_show_defaults_then_set_a_cycle_day_and_time_zone(capsys: pytest.CaptureFixture[str], db: Db) -> None:  # noqa: F811
    out = ok(capsys, "billing", "show")
    assert "Cycle ends on day last of each month; event days in UTC." in out
    assert "the default" in out
    out = ok(capsys, "billing", "set-cycle", "--day", "15", "--effective", "2030-12-01")
    assert out.strip() == "Billing cycle from 2030-12-01: cycle ends on day 15, time zone UTC."
    out = ok(capsys, "billing", "set-cycle", "--timezone", "Europe/Oslo", "--effective", "2031-01-16")
    assert "cycle ends on day 15, time zone Europe/Oslo" in out  # the day in force then is kept
    shown = json.loads(ok(capsys, "billing", "show", "--json"))
    assert shown["settings"] == [
        {"effective": "2030-12-01", "cycle_day": "15", "timezone": "UTC"},
        {"effective": "2031-01-16", "cycle_day": "15", "timezone": "Europe/Oslo"},
    ]
    assert "(planned)" in ok(capsys, "billing", "show")
    assert [row[1] for row in audit_rows(db)] == ["billing.set_cycle", "billing.set_cycle"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--day", "32", "--effective", "2030-12-01"], "1 to 31"),
        (["--day", "15", "--effective", "2020-01-01"], "in the past"),
        (["--day", "15", "--effective", "9999-12-31"], "not a date the bills can use"),
        (["--day", "15", "--effective", "0001-01-01"], "not a date the bills can use"),
        (["--timezone", "Mars/Olympus", "--effective", "2030-12-01"], "Unknown time zone"),
    ],
)
def test_bad_settings_are_one_error_line(capsys: pytest.CaptureFixture[str], db: Db, argv, message) -> None:  # noqa: F811
    result = run(capsys, "billing", "set-cycle", *argv)
    assert result.code == 1 and message in result.err and result.err.count("\n") == 1
    assert audit_rows(db) == []


@pytest.mark.parametrize(
    "argv", [["--effective", "2030-12-01"], ["--day", "15"], ["--day", "15", "--effective", "soon"]]
)
@pytest.mark.usefixtures("db")
def test_set_cycle_usage_errors(capsys: pytest.CaptureFixture[str], argv) -> None:  # noqa: F811
    assert run(capsys, "billing", "set-cycle", *argv).code == 2
