"""The running bot's built-in sandbox, driven from the CLI: the bot publishes the sandbox's address and
admin token in a private file while it runs, and `cspbot sandbox clock|fault` use it. The bot's side
runs exactly as in the app (`open_bot_partner_center`) on an event loop in a thread, because `main()`
blocks the test's own thread; the CLI runs in-process through `main(argv)`."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest

from cli.sandbox_commands import _describe_fault, _offset
from sandbox.admin_file import SandboxAdmin, publish_admin_file, read_admin_file
from sandbox.faults import FaultRule
from services.settings import Settings
from startup.partner_center import PartnerCenter, open_bot_partner_center, open_partner_center
from tests.fakes import free_port
from tests.test_cli import Db, db, ok, run  # noqa: F401  (the `db` fixture)

T = TypeVar("T")


class LoopThread:
    """An event loop in its own thread, where the bot's sandbox serves while the CLI blocks this one."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="bot-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=60)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@dataclass
class RunningBot:
    partner_center: PartnerCenter
    admin_file: Path
    loop: LoopThread

    @property
    def admin(self) -> SandboxAdmin:
        return read_admin_file(self.admin_file)


@pytest.fixture
def bot(db: Db, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningBot]:  # noqa: F811, ARG001 - db: a fixture this one needs for its effect
    """The bot's Partner Center side, started as the app starts it, on the CLI's database settings."""
    monkeypatch.delenv("PARTNER_CENTER_URL", raising=False)
    settings = Settings()
    loop = LoopThread()
    opened = open_bot_partner_center(settings)
    try:
        partner_center = loop.run(opened.__aenter__())
        try:
            yield RunningBot(partner_center, settings.sandbox_admin_file, loop)
        finally:
            loop.run(opened.__aexit__(None, None, None))
    finally:
        loop.close()


def _status_of(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as answer:
        return answer.code


# ---- the admin file ---------------------------------------------------------------------------------


async def test_the_bot_publishes_its_sandbox_in_a_private_file_while_it_runs(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")  # type: ignore[call-arg]
    path = tmp_path / "bot.partner-center-sandbox.admin.json"
    assert settings.sandbox_admin_file == path
    async with open_bot_partner_center(settings) as opened:
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        published = json.loads(path.read_text(encoding="utf-8"))
        assert set(published) == {"url", "token"} and published["url"] == opened.client._base_url
        async with (
            aiohttp.ClientSession() as session,
            session.get(
                f"{published['url']}/_sandbox/clock", headers={"Authorization": f"Bearer {published['token']}"}
            ) as answer,
        ):
            assert answer.status == 200  # the token is the running sandbox's admin token
    assert not path.exists()


async def test_only_the_bot_publishes_and_a_later_sandbox_keeps_its_file(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")  # type: ignore[call-arg]
    path = settings.sandbox_admin_file
    async with open_partner_center(settings):  # the CLI's own short-lived sandbox
        assert not path.exists()
    async with open_bot_partner_center(settings):
        later = SandboxAdmin("http://127.0.0.1:1", "another-start")
        publish_admin_file(path, later)  # a second bot on the same database started since
    assert read_admin_file(path) == later


async def test_an_unwritable_admin_file_does_not_stop_the_bot(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "blocked").write_text("a file where the folder would be")
    settings = Settings(_env_file=None, database_url=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}")  # type: ignore[call-arg]
    opened = open_partner_center(settings, admin_file=tmp_path / "blocked" / "admin.json")
    async with opened as partner_center:
        assert partner_center.clock.now().year >= 2026  # the sandbox serves
    assert "Could not write the sandbox's admin file" in caplog.text


# ---- cspbot sandbox clock ---------------------------------------------------------------------------


def test_clock_shows_sets_and_advances_the_running_bots_sandbox(
    capsys: pytest.CaptureFixture[str], bot: RunningBot
) -> None:
    shown = ok(capsys, "sandbox", "clock")
    assert shown.startswith("Sandbox time: ") and "(the same as this machine's clock)" in shown

    moved = ok(capsys, "sandbox", "clock", "--set", "2027-01-01T09:00Z")
    assert moved.startswith("Sandbox time: 2027-01-01 09:00:")
    assert bot.partner_center.clock.today() == date(2027, 1, 1)  # the bot's "now"

    assert ok(capsys, "sandbox", "clock", "--advance", "1M").startswith("Sandbox time: 2027-02-01 09:0")
    assert ok(capsys, "sandbox", "clock", "--advance", "30d").startswith("Sandbox time: 2027-03-03 09:0")
    assert bot.partner_center.clock.today() == date(2027, 3, 3)
    answer = json.loads(ok(capsys, "sandbox", "clock", "--json"))
    assert answer["now"].startswith("2027-03-03T09:0") and answer["frozen"] is False

    # The operator's other commands (their own short-lived sandbox) read the same moved clock, and
    # leave the bot's admin file alone.
    assert "Current cycle: 2027-03-01 to 2027-03-31" in ok(capsys, "billing", "show")
    assert bot.admin_file.exists()
    assert "2027-03-03" in ok(capsys, "sandbox", "clock")
    assert [p.name for p in bot.admin_file.parent.iterdir() if p.name.endswith(".tmp")] == []  # written in one step
    assert "(the same as this machine's clock)" in ok(capsys, "sandbox", "clock", "--set", "now")


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--advance", "1m"], "'1m' is ambiguous: write 1M or 1mo for months, 1min for minutes"),
        (["--advance", "soon"], "'soon' is not a duration"),
        (["--advance", "P1X"], "'P1X' is not an ISO 8601 duration"),
        (["--set", "next tuesday"], "'next tuesday' is not a date and time like 2027-01-01T09:00Z"),
        (["--advance", "1d", "--set", "2027-01-01"], "not allowed with argument"),
    ],
)
def test_a_bad_clock_move_is_a_usage_error_that_changes_nothing(
    capsys: pytest.CaptureFixture[str], bot: RunningBot, argv: list[str], problem: str
) -> None:
    before = bot.partner_center.clock.now()
    result = run(capsys, "sandbox", "clock", *argv)
    assert result.code == 2 and problem in result.err
    assert bot.partner_center.clock.now() - before < timedelta(minutes=1)


def test_the_offset_is_said_in_days_hours_and_minutes() -> None:
    assert _offset(timedelta(seconds=20)) == "the same as this machine's clock"
    assert _offset(timedelta(days=30, hours=1, seconds=5)) == "30 days 1 hour ahead of this machine's clock"
    assert _offset(-timedelta(days=1, minutes=2)) == "1 day 2 minutes behind this machine's clock"


# ---- cspbot sandbox fault ---------------------------------------------------------------------------


def test_faults_are_added_listed_and_cleared_on_the_running_bots_sandbox(
    capsys: pytest.CaptureFixture[str], bot: RunningBot
) -> None:
    added = ok(capsys, "sandbox", "fault", "add", "--status", "429", "--path", "/v1/customers", "--times", "2")
    assert added.startswith("Added fault ") and "429 (Retry-After 1 s) on * /v1/customers, calls 1-2." in added
    throttle_id = added.split()[2]
    admin = bot.admin
    assert _status_of(f"{admin.url}/v1/customers", admin.token) == 429
    listed = ok(capsys, "sandbox", "fault", "list")
    assert f"{throttle_id} 429 (Retry-After 1 s) on * /v1/customers, calls 1-2: matched 1, failed 1" in listed

    error = ok(capsys, "sandbox", "fault", "add", "--status", "503", "--method", "POST", "--path", "*/checkout")
    assert "503 on POST */checkout, call 1." in error
    assert len(json.loads(ok(capsys, "sandbox", "fault", "list", "--json"))) == 2

    assert ok(capsys, "sandbox", "fault", "clear", throttle_id) == f"Removed fault {throttle_id}.\n"
    assert _status_of(f"{admin.url}/v1/customers", admin.token) == 200
    missing = run(capsys, "sandbox", "fault", "clear", throttle_id)
    assert missing.code == 1 and f"no fault {throttle_id}" in missing.err
    assert ok(capsys, "sandbox", "fault", "clear") == "Removed all faults.\n"
    assert ok(capsys, "sandbox", "fault", "list") == "No faults.\n"


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        ([], "give --status 429 (throttling) or a 5xx status, or --kind"),
        (["--status", "404"], "give --status 429 (throttling) or a 5xx status, or --kind"),
        (["--kind", "throttle", "--status", "503"], "a throttle fault always answers 429"),
        (["--status", "500", "--nth", "2", "--rate", "0.5"], "give either --nth or --rate"),
        (["--status", "500", "--times", "0"], "'0' is not a whole number of 1 or more"),
    ],
)
@pytest.mark.usefixtures("bot")
def test_a_bad_fault_is_a_usage_error_that_adds_nothing(
    capsys: pytest.CaptureFixture[str], argv: list[str], problem: str
) -> None:
    result = run(capsys, "sandbox", "fault", "add", *argv)
    assert result.code == 2 and problem in result.err
    assert ok(capsys, "sandbox", "fault", "list") == "No faults.\n"


@pytest.mark.usefixtures("bot")
def test_what_the_sandbox_refuses_is_said_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    result = run(capsys, "sandbox", "fault", "add", "--status", "503", "--rate", "2")
    assert (
        result.code == 1
        and result.err == "error: the sandbox refused: Invalid request input: rate is a probability between 0 and 1\n"
    )


@pytest.mark.parametrize(("polls", "said"), [(1, "202 Accepted, 1 poll on"), (2, "202 Accepted, 2 polls on")])
def test_an_accepted_fault_names_its_polls_in_a_real_plural(polls: int, said: str) -> None:
    rule = FaultRule.from_json({"kind": "accepted", "polls": polls, "method": "GET"})
    assert _describe_fault(rule.to_json()) == f"{rule.id} {said} GET *, call 1"


# ---- which sandbox, and when there is none ----------------------------------------------------------


@pytest.mark.usefixtures("db")
def test_nothing_running_is_said_clearly(capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    for argv in (["sandbox", "clock"], ["sandbox", "fault", "list"], ["sandbox", "clock", "--advance", "1M"]):
        result = run(capsys, *argv)
        assert result.code == 1 and result.out == ""
        assert result.err.startswith("error: No running built-in sandbox found")
        assert "start the bot with `make run`" in result.err


@pytest.mark.usefixtures("db")
def test_an_admin_file_left_by_a_stopped_bot_is_said_clearly(
    capsys: pytest.CaptureFixture[str],
    # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PARTNER_CENTER_URL", raising=False)
    path = Settings().sandbox_admin_file
    publish_admin_file(path, SandboxAdmin(f"http://127.0.0.1:{free_port()}", "left-over-token"))
    result = run(capsys, "sandbox", "clock")
    assert result.code == 1
    assert result.err.startswith("error: No running built-in sandbox found: nothing answers at http://127.0.0.1:")
    assert "left from a bot that stopped" in result.err and "make run" in result.err
    assert "left-over-token" not in result.err


def test_a_wrong_token_and_a_bot_on_microsofts_api_are_said_clearly(
    capsys: pytest.CaptureFixture[str], bot: RunningBot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "wrong.token"
    token_file.write_text("not-the-token\n")
    wrong = run(capsys, "sandbox", "clock", "--url", bot.admin.url, "--token-file", str(token_file))
    assert wrong.code == 1 and "refused the token" in wrong.err and "not-the-token" not in wrong.err

    monkeypatch.setenv("PARTNER_CENTER_URL", "https://api.partnercenter.microsoft.com")
    microsoft = run(capsys, "sandbox", "fault", "list")
    assert microsoft.code == 1 and "PARTNER_CENTER_URL is set" in microsoft.err


def test_a_sandbox_served_alone_is_driven_with_url_and_token_file(
    capsys: pytest.CaptureFixture[str], bot: RunningBot, tmp_path: Path
) -> None:
    token_file = tmp_path / "sandbox.token"
    token_file.write_text(bot.admin.token + "\n")
    target = ["--url", bot.admin.url + "/", "--token-file", str(token_file)]
    assert ok(capsys, "sandbox", "clock", "--set", "2028-05-01T00:00Z", *target).startswith("Sandbox time: 2028-05-01")
    assert ok(capsys, "sandbox", "fault", "list", *target) == "No faults.\n"
    alone = run(capsys, "sandbox", "clock", "--token-file", str(token_file))
    assert alone.code == 1 and "--token-file goes with --url" in alone.err


# ---- cspbot sandbox [serve]: serving it alone, as before -----------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["sandbox", "--port", "9101", "--token-file", "{token}"],
        ["sandbox", "serve", "--port", "9101", "--token-file", "{token}"],
        ["sandbox", "--port", "9101", "--token-file", "{token}", "serve"],
    ],
)
def test_serving_the_sandbox_alone_keeps_its_old_form(
    capsys: pytest.CaptureFixture[str],
    db: Db,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
) -> None:
    served: list[tuple[int, str, str]] = []
    monkeypatch.setattr(
        "cli.sandbox_commands.run_sandbox", lambda port, _url, token, host: served.append((port, host, token))
    )
    token_file = db.path.parent / "alone.token"
    out = ok(capsys, *(arg.format(token=token_file) for arg in argv))
    assert "Partner Center sandbox on http://127.0.0.1:9101" in out
    ((port, host, token),) = served
    assert (port, host) == (9101, "127.0.0.1") and token == token_file.read_text().strip()
    assert oct(token_file.stat().st_mode & 0o777) == "0o600" and token not in out
