"""`make run` (cli.devrun): starts the bot (the real `app.py` on the embedded default) and the Playground,
prints the address to open with the bot's log in readable lines, and on Ctrl-C — or a closed terminal
/ `kill` — stops both, leaving no process (and no sandbox admin file) behind. The Playground is
replaced by a stub that serves HTTP on the port it is given."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fakes import free_port

ROOT = Path(__file__).resolve().parent.parent


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_make_run_starts_both_and_stops_both(tmp_path: Path, stop_signal: signal.Signals) -> None:
    pid_file = tmp_path / "playground.pid"
    stub = tmp_path / "agentsplayground"
    stub.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            f"""
            import http.server, os, sys
            port = int(sys.argv[sys.argv.index("-p") + 1])
            assert os.environ["BOT_ENDPOINT"].endswith("/api/messages"), os.environ["BOT_ENDPOINT"]
            assert os.environ["TEAMSAPPTESTER_BROWSER"] == "none"
            open({str(pid_file)!r}, "w").write(str(os.getpid()))
            http.server.HTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler).serve_forever()
            """
        )
    )
    stub.chmod(0o755)
    bot_port, playground_port = free_port(), free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MICROSOFT_APP_", "PARTNER_CENTER_", "DATABASE_", "LOG_"))
    }
    env.update(
        PORT=str(bot_port),
        HOST="127.0.0.1",
        PLAYGROUND_PORT=str(playground_port),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
    )
    launcher = (
        f"import cli.devrun as d, pathlib; d.PLAYGROUND_BIN = pathlib.Path({str(stub)!r}); raise SystemExit(d.main())"
    )
    devrun = subprocess.Popen([sys.executable, "-c", launcher], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    try:
        assert devrun.stderr is not None
        for line in devrun.stderr:
            said.append(line)
            if "Press Ctrl-C" in line:
                break
        transcript = "".join(said)
        assert f"Open http://localhost:{playground_port}" in transcript, transcript[-2000:]
        assert "UNAUTHENTICATED LOCAL MODE" in transcript  # said loudly at start-up
        # The bot's log is for a person: readable lines, quiet about its hundred Partner Center calls.
        bot_lines = [line for line in said if re.match(r"\d\d:\d\d:\d\d [A-Z]+ ", line)]
        assert any("catalog synced: 38 products" in line for line in bot_lines), transcript[-2000:]
        assert not [line for line in said if line.lstrip().startswith("{")]
        assert not [line for line in said if "Partner Center GET" in line]
        admin_file = tmp_path / "bot.partner-center-sandbox.admin.json"
        assert oct(admin_file.stat().st_mode & 0o777) == "0o600"  # `cspbot sandbox clock` finds the sandbox
        playground_pid = int(pid_file.read_text())
        assert _listening(bot_port) and _listening(playground_port)

        devrun.send_signal(stop_signal)
        assert devrun.wait(timeout=60) == 0
        assert not _listening(bot_port) and not _listening(playground_port)
        assert not _alive(playground_pid)
        assert not admin_file.exists()
    finally:
        if devrun.poll() is None:
            devrun.send_signal(signal.SIGINT)
            try:
                devrun.wait(timeout=30)
            except subprocess.TimeoutExpired:
                devrun.kill()
                devrun.wait()
        if pid_file.exists() and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
