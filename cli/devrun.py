"""`make run`: the bot on the embedded default plus the Microsoft 365 Agents Playground.

Starts `python app.py` (SQLite, demo organisation, unauthenticated on loopback) and the pinned
Playground pointed at it, prints the address to open, and stops both on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLAYGROUND_BIN = ROOT / "node_modules" / ".bin" / "agentsplayground"
PLAYGROUND_PORT = int(os.environ.get("PLAYGROUND_PORT", "56150"))
STARTUP_SECONDS = 60

log = logging.getLogger("cspbot.devrun")


def _wait_until_up(url: str, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} stopped during start-up (exit code {process.returncode}); see its output above")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    raise SystemExit(f"{what} did not answer at {url} within {STARTUP_SECONDS} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    except ProcessLookupError:
        pass


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # The bot and the Playground run in their own sessions (a Ctrl-C reaches only us, and we stop them
    # in order); a closed terminal (SIGHUP) or a `kill` (SIGTERM) must stop them too, not orphan them.
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with SIGINT ignored
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGHUP, _interrupt)
    if not PLAYGROUND_BIN.exists():
        log.error("The Agents Playground is not installed: run `npm ci` (make run does this).")
        return 1
    env = dict(os.environ)
    if env.get("MICROSOFT_APP_ID"):
        log.error("make run is the local, unauthenticated mode: unset MICROSOFT_APP_ID (the Playground cannot sign).")
        return 1
    # A person reads the bot's log here, even when make's output is piped (`make run | tee run.log`).
    env.setdefault("LOG_FORMAT", "text")
    host = env.setdefault("HOST", "127.0.0.1")
    port = env.setdefault("PORT", "3978")
    bot_url = f"http://{host}:{port}"
    bot = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT, env=env, start_new_session=True)
    processes = [bot]
    try:
        _wait_until_up(f"{bot_url}/healthz", bot, "The bot")
        playground_env = dict(env, TEAMSAPPTESTER_BROWSER="none", BOT_ENDPOINT=f"{bot_url}/api/messages")
        playground = subprocess.Popen(
            [str(PLAYGROUND_BIN), "start", "--disable-telemetry", "-p", str(PLAYGROUND_PORT), "-c", "msteams"],
            cwd=ROOT,
            env=playground_env,
            start_new_session=True,
        )
        processes.append(playground)
        _wait_until_up(f"http://localhost:{PLAYGROUND_PORT}/", playground, "The Agents Playground")
        log.info(
            "\n  The bot is running on %s (SQLite under var/, demo organisation Contoso Ltd).\n"
            "  Open http://localhost:%s in a browser to chat with it as Alex Wilber (admin).\n"
            "  Bought something? .venv/bin/cspbot sandbox clock --advance 1M moves a month on: 'billing last month'.\n"
            "  Press Ctrl-C to stop both.\n",
            bot_url,
            PLAYGROUND_PORT,
        )
        while all(process.poll() is None for process in processes):
            time.sleep(0.5)
        log.error("A process stopped; shutting down the other.")
        return 1
    except KeyboardInterrupt:
        log.info("Stopping…")
        return 0
    finally:
        for process in reversed(processes):
            _stop(process)


if __name__ == "__main__":
    sys.exit(main())
