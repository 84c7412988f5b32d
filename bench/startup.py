"""Start-up benchmark: `python app.py` until `/healthz` answers 200, against a bare aiohttp server.

Run from the repository root:

    .venv/bin/python bench/startup.py              # 7 runs of each (about a minute)
    .venv/bin/python bench/startup.py --runs 3
    .venv/bin/python bench/startup.py --imports    # and where `import app` spends its time
    .venv/bin/python bench/startup.py --against /tmp/before   # and another tree (git archive COMMIT), alternating

What is measured (docs/benchmarks.md, "Start-up"):

* **ours**: `python app.py` as an operator runs it, on the embedded default (local mode, SQLite, the built-in
  Partner Center sandbox, the demo organisation), on a **warm** database: a first, unmeasured start migrated it,
  seeded the demo organisation, synced the catalog and let Python write its bytecode caches. The time is from
  starting the process to the first 200 from `GET /healthz` (polled every 5 ms).
* **bare**: the same interpreter serving a bare aiohttp application with one `/healthz` route (`web.run_app`).
* **floor**: `python -c` importing only the libraries every turn runs on (the Agents SDK's aiohttp hosting, SQLAlchemy's
  asyncio ORM with aiosqlite, pydantic-settings), with the collector off as in `python app.py`, then exiting: what no
  lazy import of ours can remove.
* **cspbot --help** (the console script) against `python -c pass`.

Runs alternate (ours, bare, ours, ...) so both see the same machine; the medians and their ratio are printed with
each process's own CPU time (less disturbed by other work on a shared machine than wall time). Each child gets a
small environment (PATH, HOME, locale and the settings below) and runs in an empty folder, so neither the caller's
settings nor a `.env` file change what is measured; PYTHONDONTWRITEBYTECODE is not passed on (an installed
package has its bytecode compiled). This program prints figures and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

THIS_FILE = os.path.abspath(__file__)
ROOT = Path(THIS_FILE).parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import turns as base  # noqa: E402  (the shared measuring helpers; registers the atexit kill)

LOOPBACK = "127.0.0.1"
APP_GOAL_SECONDS = 1.0
CLI_GOAL_SECONDS = 0.5
BARE_SERVER = """
import sys
from aiohttp import web

async def health(request):
    return web.json_response({"status": "ok"})

app = web.Application()
app.router.add_get("/healthz", health)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""
KEPT_ENVIRONMENT = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
FLOOR_IMPORTS = (  # with the collector off while they load, as `python app.py` does
    "import gc; gc.disable(); "
    "import microsoft_agents.hosting.aiohttp, sqlalchemy.ext.asyncio, sqlalchemy.orm, aiosqlite, pydantic_settings"
)


@dataclass
class Sample:
    wall: float
    cpu: float


@dataclass
class Series:
    label: str
    samples: list[Sample] = field(default_factory=list)

    def median_wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    def median_cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    def row(self, baseline: Series | None) -> list[str]:
        walls = [s.wall for s in self.samples]
        ratio = "-" if baseline is None else f"{self.median_wall() / baseline.median_wall():.2f}x"
        cpu_ratio = "-" if baseline is None else f"{self.median_cpu() / baseline.median_cpu():.2f}x"
        return [
            self.label,
            str(len(walls)),
            f"{self.median_wall():.3f}",
            f"{min(walls):.3f}-{max(walls):.3f}",
            ratio,
            f"{self.median_cpu():.3f}",
            cpu_ratio,
        ]


def child_environment(folder: Path, port: int) -> dict[str, str]:
    env = {name: os.environ[name] for name in KEPT_ENVIRONMENT if name in os.environ}
    env.update(
        DATABASE_URL=f"sqlite+aiosqlite:///{folder / 'cspbot.sqlite3'}",
        MAIL_OUTBOX_DIR=str(folder / "outbox"),
        HOST=LOOPBACK,
        PORT=str(port),
        LOG_FORMAT="json",
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def healthy(port: int) -> bool:
    connection = http.client.HTTPConnection(LOOPBACK, port, timeout=5)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def time_to_health(command: list[str], folder: Path, log_name: str, limit: float = 120.0) -> Sample:
    """Start `command`, poll /healthz until 200, stop it with SIGTERM; wall and CPU time up to the 200."""
    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with (folder / log_name).open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=folder, env=child_environment(folder, port), stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
    base._LIVE_CHILDREN.add(process.pid)
    try:
        while not healthy(port):
            if process.poll() is not None:
                raise RuntimeError(f"{command} exited with {process.returncode}; see {folder / log_name}")
            if time.perf_counter() - started > limit:
                raise RuntimeError(f"{command} was not healthy after {limit:.0f} s; see {folder / log_name}")
            time.sleep(0.005)
        wall = time.perf_counter() - started
        cpu = base.proc_cpu_seconds(process.pid)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        base._LIVE_CHILDREN.discard(process.pid)
    return Sample(wall, cpu)


def time_to_exit(command: list[str], folder: Path, env: dict[str, str]) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return Sample(wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime))


def alternate(runs: int, measures: list[tuple[Series, Callable[[], Sample]]]) -> None:
    for index in range(runs):
        order = measures if index % 2 == 0 else list(reversed(measures))
        for series, measure in order:
            series.samples.append(measure())


def verdict(label: str, seconds: float, goal: float) -> str:
    return f"{'PASS' if seconds <= goal else 'MISS'}  {label}: {seconds:.3f} s (goal <= {goal} s)"


# Who loads what at `import app`, grouped by where it comes from (self time summed): what the SDK, SQLAlchemy
# and aiohttp cost is what a turn runs on; "ours" is what lazy imports of ours could still change.
IMPORT_GROUPS = (
    ("aiohttp (and the bare server)", ("aiohttp", "multidict", "yarl", "frozenlist", "aiosignal", "propcache")),
    ("the Agents SDK (and jwt, azure.core, opentelemetry)", ("microsoft_agents", "jwt", "cryptography", "azure",
                                                             "opentelemetry", "isodate")),
    ("pydantic and pydantic-settings", ("pydantic", "pydantic_core", "pydantic_settings", "annotated_types",
                                        "typing_inspection", "typing_extensions", "dotenv")),
    ("SQLAlchemy and aiosqlite", ("sqlalchemy", "aiosqlite", "greenlet")),
    ("ours: services.models (the ORM tables)", ("services.models",)),
    ("ours: the rest", ("services", "bot", "dialogs", "cards", "startup", "app")),
)  # fmt: skip


def _group(name: str) -> str:
    for label, prefixes in IMPORT_GROUPS:
        if any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes):
            return label
    return "other (the standard library, babel, prometheus_client, ...)"


def import_lines(folder: Path, top: int = 15) -> list[str]:
    """The modules `import app` spends most time in (cumulative µs from `python -X importtime`), and the
    self times summed by where the modules come from."""
    env = child_environment(folder, 0)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import gc; gc.disable(); import app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = []
    groups: dict[str, int] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        own, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        rows.append((int(cumulative), name))
        groups[_group(name)] = groups.get(_group(name), 0) + int(own)
    rows.sort(reverse=True)
    lines = [f"  {us / 1000:8.1f} ms  {name}" for us, name in rows[:top]]
    lines += ["", "the same, self time summed by origin (with the collector off, as `python app.py` loads):"]
    lines += [f"  {us / 1000:8.1f} ms  {label}" for label, us in sorted(groups.items(), key=lambda item: -item[1])]
    lines.append(f"  {sum(groups.values()) / 1000:8.1f} ms  in all")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="measured starts of each (default 7)")
    parser.add_argument("--imports", action="store_true", help="also print where `import app` spends its time")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="CHECKOUT",
        help="also time another tree (e.g. `git archive <commit> | tar -x -C /tmp/before`): its app.py on its own warm "
        "database, and its `cspbot --help` as python -c with that checkout first on the path",
    )
    args = parser.parse_args(argv)
    python = sys.executable
    cspbot = str(Path(python).parent / "cspbot")
    for line in base.machine_lines():
        base.out(line)
    base.out(f"load average before: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as name, tempfile.TemporaryDirectory() as other:
        folder, other_folder = Path(name), Path(other)
        ours_command = [python, str(ROOT / "app.py")]
        bare_command = [python, "-c", BARE_SERVER, "{port}"]
        warm = time_to_health(ours_command, folder, "ours.log", limit=300)
        base.out(f"first (cold) start, not counted: {warm.wall:.2f} s (migrations, demo seed, catalog sync)")
        ours, bare = Series("python app.py -> /healthz 200"), Series("bare aiohttp -> /healthz 200")
        floor = Series("floor: SDK + SQLAlchemy imports")
        env = child_environment(folder, free_port())
        starts = [
            (ours, lambda: time_to_health(ours_command, folder, "ours.log")),
            (bare, lambda: time_to_health(bare_command, folder, "bare.log")),
            (floor, lambda: time_to_exit([python, "-c", FLOOR_IMPORTS], folder, env)),
        ]
        help_series, nothing = Series("cspbot --help"), Series("python -c pass")
        helps = [
            (help_series, lambda: time_to_exit([cspbot, "--help"], folder, env)),
            (nothing, lambda: time_to_exit([python, "-c", "pass"], folder, env)),
        ]
        against = against_help = None
        if args.against is not None:
            against, against_help = Series(f"{args.against}: app.py"), Series(f"{args.against}: cspbot --help")
            against_command = [python, str(args.against / "app.py")]
            time_to_health(against_command, other_folder, "against.log", limit=300)  # its database warm too
            against_env = {**child_environment(other_folder, free_port()), "PYTHONPATH": str(args.against)}
            help_code = "from cli.main import main; main(['--help'])"
            starts.append((against, lambda: time_to_health(against_command, other_folder, "against.log")))
            helps.append((against_help, lambda: time_to_exit([python, "-c", help_code], other_folder, against_env)))
        alternate(args.runs, starts)
        alternate(args.runs, helps)
        base.out(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        base.out()
        headers = ["what", "runs", "median s", "min-max s", "/ baseline", "CPU s", "CPU / baseline"]
        rows = [ours.row(bare), bare.row(None), floor.row(bare), help_series.row(nothing), nothing.row(None)]
        if against is not None and against_help is not None:
            rows += [against.row(bare), against_help.row(nothing)]
        for line in base.table(headers, rows):
            base.out(line)
        base.out()
        base.out(verdict("python app.py to /healthz 200 (median)", ours.median_wall(), APP_GOAL_SECONDS))
        base.out(verdict("cspbot --help (median)", help_series.median_wall(), CLI_GOAL_SECONDS))
        if args.imports:
            base.out()
            base.out("import app, cumulative import time per module (python -X importtime, one run):")
            for line in import_lines(folder):
                base.out(line)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
