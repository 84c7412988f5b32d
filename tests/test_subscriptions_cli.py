"""`cspbot org approvals-channel`: set (only a conversation the bot knows, of that organisation), clear,
usage errors; audited."""

from __future__ import annotations

import sqlite3

import pytest

from tests.test_cli import FULL_PROFILE, Db, audit_rows, db, ok, run  # noqa: F401 (the db fixture)


def test_set_and_clear_the_approvals_channel(capsys: pytest.CaptureFixture[str], db: Db) -> None:  # noqa: F811
    ok(capsys, "org", "create", "fabrikam", *FULL_PROFILE)
    missing = run(capsys, "org", "approvals-channel", "fabrikam", "19:abc@thread.tacv2")
    assert missing.code == 1 and "no conversation with that id" in missing.err
    with sqlite3.connect(db.path) as connection:
        org_id = connection.execute("SELECT id FROM organisations WHERE slug = 'fabrikam'").fetchone()[0]
        connection.execute(
            "INSERT INTO conversation_references (conversation_id, conversation_type, organisation_id, reference, "
            "updated_at) VALUES ('19:abc@thread.tacv2', 'channel', ?, '{}', '2026-11-16 09:00:00')",
            (org_id,),
        )
    out = ok(capsys, "org", "approvals-channel", "fabrikam")
    assert "Approvals channel: none" in out and "19:abc@thread.tacv2  (channel)" in out
    out = ok(capsys, "org", "approvals-channel", "fabrikam", "19:abc@thread.tacv2")
    assert "also posted in 19:abc@thread.tacv2" in out
    assert "Approvals channel: 19:abc@thread.tacv2" in ok(capsys, "org", "approvals-channel", "fabrikam")
    out = ok(capsys, "org", "approvals-channel", "fabrikam", "--clear")
    assert "1:1 chats only" in out
    assert [row[1] for row in audit_rows(db)].count("approval.channel") == 2
    assert run(capsys, "org", "approvals-channel", "fabrikam", "19:abc@thread.tacv2", "--clear").code == 2
