"""The operator CLI, driven in-process through `main(argv)` on a temporary SQLite database (the installed
`cspbot` console script is run by tests/test_wheel.py). Sync tests: `main` runs its own event loop."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cli.main import COMMANDS, build_parser, main
from services.alerts import AlertService
from services.db import create_engine, create_session_factory
from services.migrate import upgrade_database
from tests.databases import assert_self_contained
from tests.fakes import free_port

APP_ID = "5f2b7c1e-8a41-4d3b-9c0e-2a6f1b9d7e34"
TENANT_ID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
OTHER_TENANT_ID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"

FULL_PROFILE = [
    "--name", "Fabrikam Ltd",
    "--address-line1", "1 Long Lane",
    "--address-line2", "Floor 3",
    "--city", "London",
    "--state", "Greater London",
    "--postal-code", "EC1A 1BB",
    "--country", "gb",
    "--contact-first-name", "Ann",
    "--contact-last-name", "Lee",
    "--contact-email", "Ann.Lee@Fabrikam.example",
    "--contact-phone", "+44 20 7946 0000",
    "--culture", "en-GB",
    "--language", "en",
    "--registration-number", "01234567",
    "--domain-prefix", "fabrikamltd",
    "--allow-self-approval",
]  # fmt: skip


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Db:
    url: str
    path: Path


def _operator_at(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Db:
    path = folder / "var" / "cli.sqlite3"
    url = f"sqlite+aiosqlite:///{path}"
    monkeypatch.chdir(folder)  # Settings read `.env` from the working directory; `dist/` lands here too
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("SEED_DEMO_ORGANISATION", "false")
    monkeypatch.setenv("MICROSOFT_APP_ID", "")
    monkeypatch.setattr("getpass.getuser", lambda: "opsy")
    return Db(url, path)


@pytest.fixture
def db(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Db:
    """A fresh database file via DATABASE_URL, a fixed operator login, and no stray `.env`."""
    return _operator_at(monkeypatch, tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> Result:
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return Result(code, out, err)


def ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    result = run(capsys, *argv)
    assert result.code == 0, result.err
    assert result.err == ""
    return result.out


def show_json(capsys: pytest.CaptureFixture[str], slug: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(capsys, "org", "show", slug, "--json"))
    return data


def audit_rows(db: Db) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db.path) as connection:
        return connection.execute("SELECT actor, action, target FROM audit_log ORDER BY id").fetchall()


def test_happy_path_from_registration_to_member_removal(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    root_handlers = logging.getLogger().handlers[:]

    out = ok(capsys, "org", "create", "fabrikam", *FULL_PROFILE)
    assert "Created organisation fabrikam (Fabrikam Ltd)" in out
    assert logging.getLogger().handlers == root_handlers  # main() gives the logging set-up back

    shown = ok(capsys, "org", "show", "fabrikam")
    for fact in ("1 Long Lane", "Floor 3", "London", "Greater London", "EC1A 1BB", "GB", "Ann Lee"):
        assert fact in shown
    assert "ann.lee@fabrikam.example" in shown and "+44 20 7946 0000" in shown
    assert "fabrikamltd.onmicrosoft.com" in shown and "01234567" in shown
    assert "Self-approval:" in shown and "allowed" in shown
    assert "not linked" in shown and "Members (0)" in shown

    profile = show_json(capsys, "fabrikam")
    assert profile["country"] == "GB" and profile["contact_email"] == "ann.lee@fabrikam.example"
    assert profile["allow_self_approval"] is True and profile["teams_tenant_id"] is None

    out = ok(capsys, "org", "update", "fabrikam", "--city", "Leeds", "--no-allow-self-approval")
    assert "city" in out
    profile = show_json(capsys, "fabrikam")
    assert profile["city"] == "Leeds" and profile["allow_self_approval"] is False
    assert profile["address_line1"] == "1 Long Lane"  # flags not given keep their values

    out = ok(capsys, "org", "link-tenant", "fabrikam", TENANT_ID.upper())
    assert TENANT_ID in out
    assert show_json(capsys, "fabrikam")["teams_tenant_id"] == TENANT_ID
    assert TENANT_ID in ok(capsys, "org", "show", "fabrikam")

    out = ok(capsys, "member", "add", "fabrikam", "Bob@Fabrikam.example", "--role", "admin", "--role", "approver",
             "--name", "Bob Brown")  # fmt: skip
    assert "bob@fabrikam.example" in out and "admin, approver" in out
    shown = ok(capsys, "org", "show", "fabrikam")
    assert "bob@fabrikam.example (Bob Brown): admin, approver" in shown

    out = ok(capsys, "member", "roles", "fabrikam", "bob@fabrikam.example", "--add", "billing", "--remove", "approver")
    assert "admin, billing" in out
    (member,) = show_json(capsys, "fabrikam")["members"]
    assert member["roles"] == ["admin", "billing"] and member["display_name"] == "Bob Brown"

    listed = json.loads(ok(capsys, "org", "list", "--json"))
    assert [o["slug"] for o in listed] == ["fabrikam"]
    assert listed[0]["members"][0]["roles"] == ["admin", "billing"]
    table = ok(capsys, "org", "list")
    assert "fabrikam" in table and "Fabrikam Ltd" in table and TENANT_ID in table

    out = ok(capsys, "member", "remove", "fabrikam", "BOB@fabrikam.example")
    assert "Removed bob@fabrikam.example" in out
    assert show_json(capsys, "fabrikam")["members"] == []

    actions = [(actor, action) for actor, action, _ in audit_rows(db)]
    assert actions == [
        ("operator:opsy", "organisation.create"),
        ("operator:opsy", "organisation.update"),
        ("operator:opsy", "organisation.link_tenant"),
        ("operator:opsy", "member.add"),
        ("operator:opsy", "member.roles"),
        ("operator:opsy", "member.remove"),
    ]


def test_fresh_database_is_migrated_on_first_command(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    assert not db.path.exists()
    assert "No organisations yet" in ok(capsys, "org", "list")
    assert json.loads(ok(capsys, "org", "list", "--json")) == []
    assert json.loads(ok(capsys, "alerts", "list", "--json")) == []


REGISTRATION = [
    ["org", "create", "acme", "--name", "Acme", "--country", "DE", "--city", "Berlin"],
    ["member", "add", "acme", "bob@acme.example", "--role", "admin"],
    ["org", "create", "other", "--name", "Other"],
    ["org", "link-tenant", "other", OTHER_TENANT_ID],
]


@pytest.fixture(scope="session")
def registered_var(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's `var/` folder (database, sandbox) after REGISTRATION ran through the CLI, made
    once per test process; each `registered` test gets a copy."""
    folder = tmp_path_factory.mktemp("cli-registered")
    with pytest.MonkeyPatch.context() as patch:
        made = _operator_at(patch, folder)
        for argv in REGISTRATION:
            out, err = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
            assert code == 0 and err.getvalue() == "", err.getvalue()
            assert "Traceback" not in out.getvalue()
    for database in made.path.parent.glob("*.sqlite3"):
        assert_self_contained(database)
    return made.path.parent


@pytest.fixture
def registered(db: Db, registered_var: Path) -> Db:
    """Two organisations: acme (bob is its admin) and other (linked to OTHER_TENANT_ID)."""
    shutil.copytree(registered_var, db.path.parent)
    return db


BAD_INPUT = [
    pytest.param(["org", "warnings", "acme", "--lead", "30,x"], "whole days from 1 to 365", id="warnings-lead"),
    pytest.param(["org", "warnings", "acme", "--quiet", "25-3"], "two different hours", id="warnings-quiet"),
    pytest.param(["org", "warnings", "acme", "--off", "sleep"], "Unknown warning 'sleep'", id="warnings-kind"),
    pytest.param(["org", "warnings", "acme", "--exclude", "E3"], "PRODUCT:SKU", id="warnings-offer"),
    pytest.param(["org", "warnings", "nope"], "No organisation 'nope'", id="warnings-org"),
    pytest.param(["org", "show", "nope"], "No organisation 'nope'", id="unknown-org-show"),
    pytest.param(["org", "update", "nope", "--city", "X"], "No organisation 'nope'", id="unknown-org-update"),
    pytest.param(["member", "add", "nope", "x@acme.example", "--role", "admin"], "No organisation", id="unknown-org"),
    pytest.param(
        ["member", "add", "acme", "new@acme.example", "--role", "boss"],
        "Unknown role 'boss'; the roles are: admin, approver, billing",
        id="bad-role",
    ),
    pytest.param(
        ["member", "add", "acme", "new@acme.example", "--role", "admin", "--role", "root"],
        "Unknown role 'root'",
        id="one-bad-role-of-two",
    ),
    pytest.param(
        ["member", "add", "acme", "not-an-email", "--role", "admin"],
        "'not-an-email' is not a valid e-mail address",
        id="malformed-email",
    ),
    pytest.param(
        ["member", "add", "acme", "BOB@acme.example", "--role", "billing"],
        "bob@acme.example is already a member of acme",
        id="duplicate-member",
    ),
    pytest.param(["org", "create", "acme", "--name", "Acme 2"], "already exists", id="duplicate-org"),
    pytest.param(["org", "create", "Acme Corp!", "--name", "X"], "not a valid short name", id="invalid-slug"),
    pytest.param(
        ["org", "create", "newco", "--name", "New", "--country", "Germany"], "two-letter ISO code", id="bad-country"
    ),
    pytest.param(["org", "update", "acme", "--country", "DEU"], "two-letter ISO code", id="bad-country-update"),
    pytest.param(
        ["org", "update", "acme", "--contact-email", "bob at acme"], "not a valid e-mail", id="bad-contact-email"
    ),
    pytest.param(["org", "update", "acme", "--name", " "], "needs a name", id="blank-name"),
    pytest.param(["org", "update", "acme"], "Nothing to change", id="update-nothing"),
    pytest.param(
        ["member", "roles", "acme", "bob@acme.example", "--remove", "admin"],
        "would be left without a role; remove the member instead",
        id="last-role",
    ),
    pytest.param(["member", "roles", "acme", "bob@acme.example", "--add", "god"], "Unknown role 'god'", id="roles-bad"),
    pytest.param(
        ["member", "roles", "acme", "eve@acme.example", "--add", "admin"], "not a member of acme", id="roles-stranger"
    ),
    pytest.param(["member", "remove", "acme", "eve@acme.example"], "not a member of acme", id="remove-stranger"),
    pytest.param(["member", "remove", "acme", "eve"], "not a valid e-mail", id="remove-malformed"),
    pytest.param(["org", "link-tenant", "acme", OTHER_TENANT_ID], "already linked to organisation 'other'", id="taken"),
    pytest.param(["org", "link-tenant", "acme", "two words"], "tenant id", id="bad-tenant-id"),
    pytest.param(["alerts", "ack", "999"], "No alert #999", id="unknown-alert"),
]


@pytest.mark.parametrize(("argv", "message"), BAD_INPUT)
def test_bad_input_is_one_error_line_and_changes_nothing(
    capsys: pytest.CaptureFixture[str], registered: Db, argv: list[str], message: str
) -> None:
    before = (show_json(capsys, "acme"), show_json(capsys, "other"), ok(capsys, "org", "list", "--json"))
    audit_before = audit_rows(registered)

    result = run(capsys, *argv)

    assert result.code == 1
    assert result.out == ""
    assert result.err.startswith("error: ") and result.err.count("\n") == 1, result.err
    assert message in result.err
    after = (show_json(capsys, "acme"), show_json(capsys, "other"), ok(capsys, "org", "list", "--json"))
    assert after == before
    assert audit_rows(registered) == audit_before


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["org"],
        ["org", "create", "acme"],  # --name is required
        ["member", "add", "acme", "x@acme.example"],  # --role is required
        ["member", "roles", "acme", "bob@acme.example"],  # neither --add nor --remove
        ["alerts", "ack", "first"],
        ["org", "list", "--colour"],
    ],
)
@pytest.mark.usefixtures("db")
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    result = run(capsys, *argv)
    assert result.code == 2
    assert "usage: cspbot" in result.err


def _command_parsers(parser: Any) -> dict[str, Any]:
    commands = next(action for action in parser._actions if action.dest == "command")
    return dict(commands.choices)


def test_only_the_command_given_is_built_and_the_help_is_the_same() -> None:
    """`cspbot --help` lists every command by its line in COMMANDS without building any; those lines must be
    what each command says of itself, and a command built alone must be the one in the whole tree."""
    whole = build_parser()
    assert build_parser(None).format_help() == whole.format_help()
    assert list(_command_parsers(build_parser(None))) == list(COMMANDS) == list(_command_parsers(whole))
    for name in COMMANDS:
        alone = _command_parsers(build_parser(name))
        assert alone[name].format_help() == _command_parsers(whole)[name].format_help()
        also_built = [other for other, parser in alone.items() if other != name and parser._actions[1:]]
        assert also_built in ([], ["catalog"] if name == "prices" else ["prices"] if name == "catalog" else [])


@pytest.mark.usefixtures("db")
def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "org", "create", "--help")
    assert result.code == 0
    for flag in ("--address-line1", "--postal-code", "--contact-email", "--domain-prefix", "--no-allow-self-approval"):
        assert flag in result.out


@pytest.mark.usefixtures("db")
def test_database_errors_never_show_the_password(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://operator:s3cret-pw@127.0.0.1:1/cspbot")
    result = run(capsys, "org", "list")
    assert result.code == 1 and result.err.startswith("error: cannot open the database")
    assert "s3cret-pw" not in result.err

    monkeypatch.setenv("DATABASE_URL", "postgresql://operator:s3cret-pw@host:notaport/db")
    result = run(capsys, "org", "list")
    assert result.code == 1 and "DATABASE_URL is not a valid database URL" in result.err
    assert "s3cret-pw" not in result.err


async def _raise_alert(url: str, *, organisation_id: int | None = None) -> int:
    engine = create_engine(url)
    try:
        await upgrade_database(engine)
        alerts = AlertService(create_session_factory(engine))
        message = "No price for CFQ7TTC0LH18."
        await alerts.raise_alert("unpriced_product", message, organisation_id=organisation_id)
        view = await alerts.raise_alert("unpriced_product", message, organisation_id=organisation_id)
        return view.id
    finally:
        await engine.dispose()


def test_alerts_list_and_acknowledge(capsys: pytest.CaptureFixture[str], registered: Db) -> None:
    organisation_id = show_json(capsys, "acme")["id"]
    alert_id = asyncio.run(_raise_alert(registered.url, organisation_id=organisation_id))

    listed = ok(capsys, "alerts", "list")
    assert f"#{alert_id} warning unpriced_product [acme]: No price for CFQ7TTC0LH18." in listed
    assert "seen 2 times" in listed
    (alert,) = json.loads(ok(capsys, "alerts", "list", "--json"))
    assert alert["id"] == alert_id and alert["status"] == "open" and alert["organisation"] == "acme"
    assert alert["occurrences"] == 2

    assert f"Acknowledged alert #{alert_id}" in ok(capsys, "alerts", "ack", str(alert_id))
    assert "No open alerts." in ok(capsys, "alerts", "list")
    (alert,) = json.loads(ok(capsys, "alerts", "list", "--all", "--json"))
    assert alert["status"] == "acknowledged" and alert["acknowledged_by"] == "operator:opsy"
    assert "acknowledged by operator:opsy" in ok(capsys, "alerts", "list", "--all")

    again = run(capsys, "alerts", "ack", str(alert_id))
    assert again.code == 1 and "already acknowledged by operator:opsy" in again.err
    unknown = run(capsys, "alerts", "ack", "4242")
    assert unknown.code == 1 and unknown.err == "error: No alert #4242.\n"


def _manifest(path: Path) -> dict[str, Any]:
    with zipfile.ZipFile(path) as archive:
        assert sorted(archive.namelist()) == ["color.png", "manifest.json", "outline.png"]
        data: dict[str, Any] = json.loads(archive.read("manifest.json"))
        return data


def test_package_builds_the_teams_app_zip(capsys: pytest.CaptureFixture[str], db: Db, tmp_path: Path) -> None:
    out_path = tmp_path / "out" / "app.zip"
    out = ok(capsys, "package", "--app-id", APP_ID, "--out", str(out_path), "--version", "1.2.3",
             "--bot-domain", "bot.fabrikam.example")  # fmt: skip
    assert str(out_path) in out
    manifest = _manifest(out_path)
    assert manifest["id"] == APP_ID and manifest["bots"][0]["botId"] == APP_ID
    assert manifest["version"] == "1.2.3" and manifest["validDomains"] == ["bot.fabrikam.example"]
    assert not db.path.exists()  # packaging needs no database


@pytest.mark.usefixtures("db")
def test_package_defaults_to_microsoft_app_id_and_dist(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MICROSOFT_APP_ID", APP_ID)
    ok(capsys, "package")
    assert _manifest(tmp_path / "dist" / "appPackage.zip")["id"] == APP_ID


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["package", "--app-id", "not-a-guid"], "app_id must be a GUID"),
        (["package"], "no app id: pass --app-id GUID or set MICROSOFT_APP_ID"),
        (["package", "--app-id", APP_ID, "--version", "1.0"], "version must be MAJOR.MINOR.PATCH"),
        (["package", "--app-id", APP_ID, "--bot-domain", "https://bot.example/x"], "bare host name"),
    ],
)
@pytest.mark.usefixtures("db")
def test_package_bad_input(capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str) -> None:
    result = run(capsys, *argv)
    assert result.code == 1
    assert result.err.startswith("error: ") and message in result.err
    assert not (tmp_path / "dist").exists()


def test_sandbox_command_serves_the_sandbox_alone_with_a_private_token(tmp_path: Path) -> None:
    """`cspbot sandbox --port N`: the same sandbox the bot embeds, on its own port, token in a 0600 file."""
    import time
    import urllib.error
    import urllib.request

    port = free_port()
    token_file = tmp_path / "sandbox.token"
    env = {**os.environ, "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}"}
    command = [sys.executable, "-m", "cli.main", "sandbox", "--port", str(port), "--token-file", str(token_file)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not token_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        token = token_file.read_text().strip()
        status = None
        while time.monotonic() < deadline:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1/domains/contoso.onmicrosoft.com",
                method="HEAD",
                headers={"Authorization": f"Bearer {token}"},
            )
            try:
                status = urllib.request.urlopen(request, timeout=2).status
                break
            except urllib.error.HTTPError as error:
                status = error.code
                break
            except OSError:
                time.sleep(0.1)
        assert status == 200  # contoso.onmicrosoft.com is one of the seeded, taken domains
        unauthorised = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/domains/contoso.onmicrosoft.com", method="HEAD"
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(unauthorised, timeout=2)
        assert refused.value.code == 401
        assert (tmp_path / "bot.partner-center-sandbox.sqlite3").exists()
    finally:
        process.terminate()
        out, err = process.communicate(timeout=10)
    assert token not in out + err


def test_tenant_show_and_resend_credentials(capsys: pytest.CaptureFixture[str], db: Db, monkeypatch) -> None:
    """The operator sees the organisation's tenant and delivers a sign-in e-mail the retries gave up on."""
    outbox = db.path.parent / "outbox"
    monkeypatch.setenv("MAIL_OUTBOX_DIR", str(outbox))
    ok(capsys, "org", "create", "fabrikam", *FULL_PROFILE)
    assert "no Microsoft 365 tenant yet" in ok(capsys, "tenant", "show", "fabrikam")
    assert run(capsys, "tenant", "resend-credentials", "fabrikam").code == 1
    with sqlite3.connect(db.path) as connection:
        (org_id,) = connection.execute("SELECT id FROM organisations WHERE slug = 'fabrikam'").fetchone()
        connection.execute(
            "INSERT INTO tenant_services (organisation_id, status, origin, customer_id, domain, job_key, requested_by,"
            " requested_at, admin_user, contact_email, credentials_status, credentials_password, mca_name, mca_email)"
            " VALUES (?, 'active', 'created', 'c-1', 'fabrikamltd.onmicrosoft.com', 'k', 'ann@fabrikam.example',"
            " '2026-11-16 09:00:00', 'admin@fabrikamltd.onmicrosoft.com', 'ann.lee@fabrikam.example', 'queued',"
            " 'Pw-waiting-7!', '', '')",
            (org_id,),
        )
    shown = json.loads(ok(capsys, "tenant", "show", "fabrikam", "--json"))
    assert shown["domain"] == "fabrikamltd.onmicrosoft.com" and shown["credentials_email"] == "queued"
    assert "Pw-waiting-7!" not in json.dumps(shown)

    out = ok(capsys, "tenant", "resend-credentials", "fabrikam")
    assert "Sent the sign-in details for fabrikamltd.onmicrosoft.com to a***@fabrikam.example" in out
    [mail] = list(outbox.glob("*.eml"))
    assert "Pw-waiting-7!" in mail.read_text()
    with sqlite3.connect(db.path) as connection:
        assert connection.execute("SELECT credentials_password FROM tenant_services").fetchone() == (None,)
    again = run(capsys, "tenant", "resend-credentials", "fabrikam")
    assert again.code == 1 and "No e-mail is waiting" in again.err


def test_mail_list_and_retry(capsys: pytest.CaptureFixture[str], db: Db, monkeypatch) -> None:
    """The operator lists the outbox (never a secret) and sends a message the retries gave up on."""
    outbox = db.path.parent / "outbox"
    monkeypatch.setenv("MAIL_OUTBOX_DIR", str(outbox))
    assert "No e-mails." in ok(capsys, "mail", "list")
    with sqlite3.connect(db.path) as connection:
        connection.execute(
            "INSERT INTO mail_messages (to_address, subject, body_text, body_html, secrets, status, attempts,"
            " last_error, created_at, updated_at) VALUES ('kim@example.com', 'Your password', 'Password: {password}',"
            " '', '{\"password\": \"Pw-kept-8!\"}', 'failed', 6, 'ConnectionRefusedError', '2026-11-26 03:00:00',"
            " '2026-11-26 03:00:00')"
        )
        (message_id,) = connection.execute("SELECT id FROM mail_messages").fetchone()
    listed = ok(capsys, "mail", "list", "--status", "failed")
    assert f"#{message_id} failed" in listed and "kim@example.com" in listed and "ConnectionRefusedError" in listed
    assert "Pw-kept-8!" not in listed
    (row,) = json.loads(ok(capsys, "mail", "list", "--json"))
    assert row["id"] == message_id and row["has_secrets"] and "Pw-kept-8!" not in json.dumps(row)

    assert f"E-mail #{message_id} delivered." in ok(capsys, "mail", "retry", str(message_id))
    [mail] = list(outbox.glob("*.eml"))
    assert "Password: Pw-kept-8!" in mail.read_text()
    with sqlite3.connect(db.path) as connection:
        assert connection.execute("SELECT status, secrets FROM mail_messages").fetchone() == ("sent", None)
    again = run(capsys, "mail", "retry", str(message_id))
    assert again.code == 1 and "delivered already" in again.err
    assert run(capsys, "mail", "retry", "4242").code == 1


def test_org_warnings_shows_and_changes_an_organisations_warnings(capsys: pytest.CaptureFixture[str], registered: Db):
    shown = ok(capsys, "org", "warnings", "acme")
    assert "seat window closing  on" in shown and "renewal lead times   30 days, 7 days before" in shown
    assert "quiet hours          none (UTC)" in shown
    changed = ok(
        capsys, "org", "warnings", "acme", "--off", "idle", "--lead", "60,14", "--idle-days", "45",
        "--exclude", "cfq7ttc0lh18:0001", "--quiet", "20-08", "--timezone", "Europe/Oslo",
    )  # fmt: skip
    assert changed.startswith("Changed acme:") and "idle licences        off" in changed
    assert json.loads(ok(capsys, "org", "warnings", "acme", "--json")) == {
        "enabled": ["renewal", "seat_window"],
        "renewal_lead_days": [60, 14],
        "seat_window_hours": 48,
        "idle_days": 45,
        "excluded_skus": ["CFQ7TTC0LH18:0001"],
        "quiet_hours": "20-08",
        "timezone": "Europe/Oslo",
        "channel": None,
    }
    # A channel the bot does not know is refused, and the other changes given with it are not made.
    refused = run(capsys, "org", "warnings", "acme", "--channel", "19:unknown@thread.tacv2", "--lead", "30")
    assert refused.code == 1 and "no conversation with that id" in refused.err
    assert json.loads(ok(capsys, "org", "warnings", "acme", "--json"))["renewal_lead_days"] == [60, 14]
    assert json.loads(ok(capsys, "org", "warnings", "other", "--json"))["renewal_lead_days"] == [30, 7]
    assert ("operator:opsy", "warnings.settings", "") in audit_rows(registered)


def test_org_policy_sets_shows_and_clears_the_spending_policy(capsys: pytest.CaptureFixture[str], db: Db) -> None:
    ok(capsys, "org", "create", "fabrikam", *FULL_PROFILE)
    assert "No spending needs an approver." in ok(capsys, "org", "policy", "fabrikam")
    out = ok(capsys, "org", "policy", "fabrikam", "--monthly-threshold", "500", "--commitments", "--currency", "gbp")
    assert "Spending policy of fabrikam (GBP)" in out and "more than £500.00 a month" in out
    assert "Any 1-year or 3-year commitment needs an approver." in out
    out = ok(capsys, "org", "policy", "fabrikam", "--annual-limit", "20000", "--no-commitments")
    assert "more than £500.00 a month" in out and "over £20,000.00 a year" in out and "commitment" not in out
    out = ok(capsys, "org", "policy", "fabrikam", "--monthly-threshold", "none")
    assert "a month" not in out and "£20,000.00" in out
    bad = run(capsys, "org", "policy", "fabrikam", "--annual-limit", "lots")
    assert bad.code != 0 and "not an amount" in bad.err
    assert ("spending.policy", "") in {(action, target) for _, action, target in audit_rows(db)}
