"""Capacity across cores: our bot served by 1 and by 2 worker processes (`python app.py --workers N`), driven as
Teams drives it.

Run from the repository root (PostgreSQL at 127.0.0.1:5432, trust, database `test`, for --databases postgres):

    .venv/bin/python bench/workers.py                  # PostgreSQL, 1 and 2 workers, rates 25 ... 400 turns/s
    .venv/bin/python bench/workers.py --quick          # shorter steps
    .venv/bin/python bench/workers.py --databases sqlite,postgres

Everything but the serving is bench/turns_honest.py's (docs/benchmarks.md, "Honest turn benchmark"): every request
carries a Bot Framework JWT the bot validates, 1,000 users in 50 organisations go round the same six-step script
(menu, dialog steps with state writes, a Partner Center call), the connector stub answers every POST after 100 ms,
the Partner Center sandbox runs in its own process, a 503 is sent again after its Retry-After. Here each server is
`bot/workers.py` serving the app from N forked workers on one port, exactly as `python app.py --workers N` does
(with the benchmark's local signing key, outbound token and sandbox instead of Microsoft's). Before forking, the
parent process migrates the server's fresh database and registers the population once.

Both servers (1 and 2 workers, each on its own database) run side by side; they take turns at each offered rate
(1 worker, 2 workers, then the other way round), so they meet the same machine. A step counts the turns **answered
within Teams' 5 s** per second of the time the server worked on them (from the step's first send to the last such
reply); a server's **capacity** is its most turns answered per second over the steps (its sweep stops once it is
saturated and answers no more than before). Beside every step:
the server's CPU (all its processes: 200 % is both cores), the load generator's own CPU (the connector stub
included) and everyone else's (the sandbox, PostgreSQL, other people's work). After the sweep, both servers answer
`GET /healthz` back to back from 32 connections (a database query and no turn): what the process model gives where
the sandbox, PostgreSQL and the connector stub are not in the path.

This program prints figures and asserts nothing about them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

THIS_FILE = os.path.abspath(__file__)
ROOT = Path(THIS_FILE).parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import turns as base  # noqa: E402  (the shared measuring helpers; registers the atexit kill)
from bench import turns_honest as honest  # noqa: E402  (the population, the load generator, the servers' app)

GOAL_RATIO = 1.6
TEAMS_WINDOW_MS = 5000.0


# ==== a server: the app from N workers (`--serve ours --run-file FILE`) =====================================


def serve(run: dict[str, Any]) -> int:
    """Prepare the database once, then serve from run["workers"] forked workers; prints `READY <port>`."""
    from bot.workers import serve_workers

    base._require_loopback(run["connector_url"])
    workdir = Path(tempfile.mkdtemp(prefix="bench-workers-"))

    def make_app() -> Any:
        trust = ssl.create_default_context(cafile=run["ca_file"])
        return honest._our_app(run, workdir, trust, honest.LocalSigningKeys(run["jwk"]))

    def serving(port: int) -> None:
        sys.stdout.write(f"READY {port}\n")
        sys.stdout.flush()

    try:
        asyncio.run(_prepare(make_app, run["organisations"]))
        for thread in threading.enumerate():  # nothing may be half-way through a lock when the workers fork
            if thread is not threading.main_thread():
                thread.join(timeout=10)
        return serve_workers(make_app, honest.LOOPBACK, 0, run["workers"], on_serving=serving)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def _prepare(make_app: Any, organisations: list[dict[str, Any]]) -> None:
    """Migrations, the catalog and the population, once, by an app that starts and stops without serving."""
    from aiohttp import web

    from app import RUNTIME

    app = make_app()
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        started = time.perf_counter()
        await honest.register_population(app[RUNTIME].services, organisations)
        sys.stderr.write(f"registered the population in {time.perf_counter() - started:.1f} s\n")
    finally:
        await runner.cleanup()


class WorkersServer(honest.Server):
    script = THIS_FILE


# ==== the load generator's side ===========================================================================


def answered_per_second(window: honest.Window) -> float:
    """Turns answered within Teams' 5 s per second, over the time the server worked on the window's turns: from
    the first send to the last such reply (at saturation that is the server's capacity; below it, the rate)."""
    answered = [t.reply_at for t in window.turns if t.reply_at is not None and (t.latency_ms or 0.0) <= TEAMS_WINDOW_MS]
    if not answered:
        return 0.0
    span = max(answered) - min(t.first_sent for t in window.turns)
    return len(answered) / span if span > 0 else 0.0


HEADERS = [*honest.HEADERS, "answered/s", "load avg"]


async def sweep(args: argparse.Namespace, generator: honest.LoadGenerator, servers: list[honest.Server]) -> None:
    idle = {server.label: generator.users(server.organisations) for server in servers}
    for server in servers:  # every user once round the script: state rows, mirrors and caches as in use
        astray = await generator.stagger(server, idle[server.label], honest.STAGGER_RATE)
        base.out(f"[{server.label}] staggered the users over the script's steps ({astray} not where they should be)")
        window = await generator.window(server, idle[server.label], "warm-up", args.warmup_rate, args.warmup)
        base.out(f"[{server.label}] warm-up: {len(window.turns)} turns, p99 {base.fmt(window.percentile(99))} ms")
    best: dict[str, tuple[float, float, honest.Window]] = {}  # label: (answered/s, rate, window)
    rows: list[list[str]] = []
    going = list(servers)
    for index, rate in enumerate(args.rates):
        order = going if index % 2 == 0 else list(reversed(going))
        for server in order:
            window = await honest.measured(
                generator, server, idle[server.label], "step", rate, args.step, args.quiet_wait
            )
            answered = answered_per_second(window)
            rows.append([*honest.row(server.label, window), base.fmt(answered, 1), window.load])
            base.out(f"[{server.label}] {rate:g}/s offered: {answered:.1f}/s answered within 5 s, p99 "
                     f"{base.fmt(window.percentile(99))} ms, refused {window.count(lambda t: t.refused)}, server "
                     f"CPU {base.fmt(window.share(window.cpu_seconds), 0)} %, generator "
                     f"{base.fmt(window.share(window.generator_cpu_seconds), 0)} %, others "
                     f"{base.fmt(window.share(window.other_cpu_seconds), 0)} %, load {window.load}")  # fmt: skip
            previous = best.get(server.label, (0.0, 0.0, window))[0]
            if answered > previous:
                best[server.label] = (answered, rate, window)
            if answered < 0.85 * rate and answered <= 1.05 * previous:  # saturated, and no more than before
                going.remove(server)
        if not going:
            break
    base.out()
    base.out(f"STEPS ({args.step:g} s each; latency = the admitted POST -> first reply at the connector)")
    for line in base.table(HEADERS, rows):
        base.out(line)
    base.out()
    base.out("CAPACITY (most turns answered within 5 s per second over the steps)")
    for server in servers:
        if server.label not in best:
            continue
        answered, rate, window = best[server.label]
        base.out(f"  {server.label}: {answered:.1f} turns/s (offered {rate:g}/s; p99 {base.fmt(window.percentile(99))}"
                 f" ms; server CPU {base.fmt(window.share(window.cpu_seconds), 0)} %, load generator "
                 f"{base.fmt(window.share(window.generator_cpu_seconds), 0)} %, others "
                 f"{base.fmt(window.share(window.other_cpu_seconds), 0)} %)")  # fmt: skip
    for database in args.databases:
        one, two = best.get(f"1-worker-{database}"), best.get(f"2-workers-{database}")
        if one is None or two is None or not one[0]:
            continue
        ratio = two[0] / one[0]
        verdict = "PASS" if ratio >= GOAL_RATIO else "MISS"
        base.out(f"  {verdict}  {database}: 2 workers / 1 worker = {ratio:.2f}x ({two[0]:.1f} vs {one[0]:.1f} "
                 f"turns/s; goal >= {GOAL_RATIO}x)")  # fmt: skip
        ceiling(database, one[2])


def ceiling(database: str, window: honest.Window) -> None:
    """The best ratio this machine allows, from one worker's CPU per turn and everyone else's at its capacity (where
    it is CPU-bound): one worker can use one core; two workers share both cores with PostgreSQL, the sandbox and the
    load generator, which need their CPU per turn wherever the turn is served."""
    server = window.cpu_seconds * 1000 / window.admitted
    others = (window.other_cpu_seconds + window.generator_cpu_seconds) * 1000 / window.admitted
    cores = os.cpu_count() or 2
    best = min(cores, (cores * server) / (server + others)) if server + others else float("nan")
    base.out(f"  INFO  ceiling on this machine ({database}, one worker's step at its capacity, {window.rate:g}/s): "
             f"a turn costs {server:.1f} ms of the worker's CPU and {others:.1f} ms of everyone else's (PostgreSQL, "
             f"the sandbox, the load generator); one worker can use one core, two share all {cores} with the rest: "
             f"CPU-bound, two give at most {cores} x {server:.1f} / ({server:.1f} + {others:.1f}) "
             f"= {best:.2f}x one")  # fmt: skip


async def health_throughput(server: honest.Server, seconds: float, connections: int = 32) -> tuple[float, float, float]:
    """`GET /healthz` (a database query, no turn) from `connections` clients back to back: requests per second,
    the server's and the load generator's CPU %. What the process model gives where the app's own path is short."""
    from aiohttp import ClientSession, TCPConnector

    url = f"http://{honest.LOOPBACK}:{server.port}/healthz"
    done = 0
    async with ClientSession(connector=TCPConnector(limit=connections)) as session:
        cpu_before, own_before, began = server.cpu_seconds(), base.own_cpu_seconds(), time.perf_counter()
        end = began + seconds

        async def client() -> None:
            nonlocal done
            while time.perf_counter() < end:
                async with session.get(url) as response:
                    await response.read()
                done += 1

        await asyncio.gather(*(client() for _ in range(connections)))
        wall = time.perf_counter() - began
        cpu, own = server.cpu_seconds() - cpu_before, base.own_cpu_seconds() - own_before
    return done / wall, 100 * cpu / wall, 100 * own / wall


async def health_scaling(args: argparse.Namespace, servers: list[honest.Server]) -> None:
    base.out()
    base.out(f"GET /healthz back to back from 32 connections ({args.health_rounds} rounds of {args.step:g} s, "
             "taking turns)")  # fmt: skip
    results: dict[str, list[tuple[float, float, float]]] = {server.label: [] for server in servers}
    for round_number in range(args.health_rounds):
        for server in servers if round_number % 2 == 0 else list(reversed(servers)):
            results[server.label].append(await health_throughput(server, args.step))
    for label, figures in results.items():
        rate, cpu, own = (statistics.median(f[i] for f in figures) for i in range(3))
        base.out(f"  {label}: {rate:.0f} requests/s (median), server CPU {cpu:.0f} %, load generator {own:.0f} %")
    for database in args.databases:
        one, two = results.get(f"1-worker-{database}"), results.get(f"2-workers-{database}")
        if one and two:
            ratio = statistics.median(f[0] for f in two) / statistics.median(f[0] for f in one)
            base.out(f"  {database}: 2 workers / 1 worker = {ratio:.2f}x on /healthz")


async def run(args: argparse.Namespace) -> None:
    for line in base.machine_lines():
        base.out(line)
    base.out(f"load average at start: {honest.loadavg()}")
    servers: list[honest.Server] = []
    async with honest.rig(args, prefix="bench-workers-") as shared:
        try:
            async with contextlib.AsyncExitStack() as stack:
                for database in args.databases:
                    for workers in (1, 2):
                        label = f"{workers}-worker{'s' if workers > 1 else ''}-{database}"
                        if database == "sqlite":
                            url = f"sqlite+aiosqlite:///{shared.folder / (label + '.sqlite3')}"
                        else:
                            url = await stack.enter_async_context(honest.postgres_database())
                        settings = {
                            "database_url": url,
                            "max_concurrent_turns": args.max_concurrent_turns,
                            "max_working_turns": args.max_working_turns,
                            "workers": workers,
                        }
                        server = WorkersServer(label, "ours", {**shared.common, **settings}, shared.folder)
                        servers.append(server)
                        began = time.perf_counter()
                        await server.start()
                        base.out(f"[{label}] started ({workers} worker{'s' if workers > 1 else ''}) and registered "
                                 f"{honest.ORGANISATIONS * honest.USERS_PER_ORGANISATION} users in "
                                 f"{time.perf_counter() - began:.0f} s (pid {server.pid})")  # fmt: skip
                await sweep(args, shared.generator, servers)
                if args.health_rounds:
                    await health_scaling(args, servers)
        finally:
            for server in servers:
                await server.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Capacity with 1 and 2 workers (see the docstring).")
    add = parser.add_argument
    add("--quick", action="store_true", help="5 s steps, 10 s warm-up")
    add("--rates", type=honest._rates, default=[25, 50, 75, 100, 125, 150, 200, 250, 300, 400],
        help="offered turns per second, in steps (default 25,50,75,100,125,150,200,250,300,400)")  # fmt: skip
    add("--step", type=float, help="seconds per step (default 10; quick 5)")
    add("--warmup", type=float, help="unmeasured seconds per server first (default 30; quick 10)")
    add("--warmup-rate", type=float, default=40.0, help="turns per second of the warm-up (default 40)")
    add("--databases", default="postgres", help="the servers' databases: sqlite,postgres (default postgres)")
    add("--max-concurrent-turns", type=int, default=64, help="MAX_CONCURRENT_TURNS of each worker (default 64)")
    add("--max-working-turns", type=int, default=4, help="MAX_WORKING_TURNS of each worker (default 4)")
    add("--max-retries", type=int, default=4, help="times a 503 is sent again, as Teams would (default 4)")
    add("--connector-delay", type=float, default=0.1, help="seconds the connector stub takes per POST (default 0.1)")
    add("--lost-after", type=float, default=10.0, help="an admitted turn's reply is waited for this long (default 10)")
    add("--quiet-wait", type=float, default=5.0, help="wait up to this long for other processes to go quiet")
    add("--health-rounds", type=int, default=4, help="rounds of the /healthz comparison after the sweep (0: none)")
    add("--keep-logs", action="store_true", help="keep the servers' logs (their folder is printed)")
    add("--serve", choices=("ours",), help=argparse.SUPPRESS)
    add("--run-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.step = args.step or (5.0 if args.quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (10.0 if args.quick else 30.0)
    args.databases = honest.database_names(parser, args.databases)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve:
        import json

        return serve(json.loads(Path(args.run_file).read_text()))
    return honest.run_timed(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
