"""`cspbot directory import|list`: the organisation's user directory loaded from CSV by the operator."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.test_cli import Db, db, ok, run  # noqa: F401  (the `db` fixture)

CSV = """email,first_name,last_name,display_name,user_name,usage_location
ana@example.com,Ana,Silva,Ana Silva,ana.silva,pt
bo@example.com,Bo,Berg,,,
not-an-address,,,,,
"""


def test_directory_import_from_csv_and_list(capsys: pytest.CaptureFixture[str], db: Db, tmp_path: Path) -> None:  # noqa: F811
    ok(capsys, "org", "create", "fabrikam", "--name", "Fabrikam Ltd", "--country", "GB")
    path = tmp_path / "people.csv"
    path.write_text(CSV, encoding="utf-8")
    result = run(capsys, "directory", "import", "fabrikam", str(path))
    assert result.code == 0
    assert "2 added, 0 updated" in result.out
    assert "skipped line 4: not-an-address is not an e-mail address" in result.err
    listed = ok(capsys, "directory", "list", "fabrikam")
    assert "ana@example.com  Ana Silva  (not in tenant)" in listed and "bo@example.com  Bo Berg" in listed
    with sqlite3.connect(db.path) as connection:
        (location,) = connection.execute(
            "SELECT usage_location FROM directory_users WHERE email='ana@example.com'"
        ).fetchone()
        actions = [row[0] for row in connection.execute("SELECT action FROM audit_log")]
    assert location == "PT" and "directory.load_csv" in actions
    again = run(capsys, "directory", "import", "fabrikam", str(path))
    assert "0 added, 2 updated" in again.out


@pytest.mark.usefixtures("db")
def test_directory_import_refuses_bad_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:  # noqa: F811
    ok(capsys, "org", "create", "fabrikam", "--name", "Fabrikam Ltd", "--country", "GB")
    missing = run(capsys, "directory", "import", "fabrikam", str(tmp_path / "nope.csv"))
    assert missing.code == 1 and "cannot read" in missing.err
    bad = tmp_path / "bad.csv"
    bad.write_text("mail,name\nx@example.com,X\n", encoding="utf-8")
    wrong = run(capsys, "directory", "import", "fabrikam", str(bad))
    assert wrong.code == 1 and "header line with at least 'email'" in wrong.err
    unknown = run(capsys, "directory", "import", "nobody", str(bad))
    assert unknown.code == 1
