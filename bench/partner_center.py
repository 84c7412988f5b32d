"""Partner Center client benchmark: what `PartnerCenterClient` adds to a call, against a raw aiohttp request to
the same sandbox endpoint, in the same run.

Run from the repository root:

    .venv/bin/python bench/partner_center.py            # full run (about a minute)
    .venv/bin/python bench/partner_center.py --quick    # short run (about 15 s)
    .venv/bin/python bench/partner_center.py --profile /tmp/pc.prof    # + cProfile of the client calls

The built-in sandbox runs in its own subprocess (this file with `--serve-sandbox`, on a fresh SQLite file and a
random token, 127.0.0.1 only), so its work is not counted in this process's CPU time. This process seeds one
customer with five subscriptions through the client, then times sequential calls, one at a time:

  raw          `session.get(url, headers={Authorization, Accept})`, `await response.read()`, `json.loads`:
               the least a hand-written caller does.
  client       the product's client: MS-RequestId/MS-CorrelationId, the retry loop, error mapping, and the
               pydantic model. Python logging as the library default (WARNING): no log line per call.
  client+log   the same with the app's logging set-up (`configure_logging("INFO")`, JSON to /dev/null): the
               one INFO line per call that names MS-RequestId and MS-CorrelationId.

for three GETs: one subscription (`client.subscription`), the customer's subscriptions (a collection of 5), and
the country rules (`client.country_rules`). Variants alternate in rounds (rotating order) after a warm-up, over
the same kept-alive session and the same sandbox, so they are compared close together in time.

Figures: time per call (what a caller waits: the sandbox's own work is in it, equal for all variants) as the
median call (p50; robust against the shared machine's spikes, which inflate means in whichever variant they
hit), p99 and the mean; this process's CPU per call (`time.process_time`: the client side only); the ratios to
raw. It prints PASS/MISS for the target (the client's median GET <= 1.3x raw) and asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime
import io
import json
import logging
import os
import platform
import pstats
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.logging_context import logging_configured  # noqa: E402
from services.partner_center import PartnerCenterClient, StaticTokenProvider  # noqa: E402
from services.partner_center.models import (  # noqa: E402
    Address,
    BillingCycle,
    CartLineItem,
    Contact,
    Customer,
    CustomerBillingProfile,
    CustomerCompanyProfile,
)

TARGET_RATIO = 1.3
VARIANTS = ("raw", "client", "client+log")
BASIC = ("CFQ7TTC0LH18", "0001")


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ==== the sandbox (run as `--serve-sandbox` in its own process) ===========================================


async def serve_sandbox(database_url: str, token: str) -> None:
    from sandbox import start_sandbox

    running = await start_sandbox(database_url=database_url, accepted_token=token, port=0)
    out(f"READY {running.url}")
    try:
        # Stop with the parent: stdin closes when the benchmark ends (or dies).
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        await running.close()


@contextlib.contextmanager
def sandbox_process(token: str) -> Any:
    with tempfile.TemporaryDirectory(prefix="pc-bench-") as folder:
        database_url = f"sqlite+aiosqlite:///{Path(folder) / 'sandbox.sqlite3'}"
        env = dict(os.environ, SANDBOX_BENCH_TOKEN=token)
        process = subprocess.Popen(
            [sys.executable, __file__, "--serve-sandbox", database_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            cwd=ROOT,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline().decode().strip()
            if not line.startswith("READY "):
                raise SystemExit(f"the sandbox did not start: {line!r}")
            yield line.removeprefix("READY ")
        finally:
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


# ==== the measurement ======================================================================================


@dataclass
class Endpoint:
    name: str
    path: str
    call: Callable[[], Awaitable[Any]]


@dataclass
class Figures:
    wall: list[float] = field(default_factory=list)  # seconds per call, one entry per round
    cpu: list[float] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)  # the median call of each round


async def seed(client: PartnerCenterClient) -> tuple[str, str]:
    """One customer (MCA attested) with five Business Basic subscriptions; returns (customer, subscription)."""
    domain = f"bench{secrets.token_hex(5)}.onmicrosoft.com"
    customer = await client.create_customer(
        Customer(
            company_profile=CustomerCompanyProfile(domain=domain),
            billing_profile=CustomerBillingProfile(
                email="admin@example.com",
                culture="en-US",
                language="en",
                company_name="Bench Ltd",
                default_address=Address(
                    first_name="Tania",
                    last_name="Carr",
                    address_line1="1 Microsoft Way",
                    city="Redmond",
                    state="WA",
                    postal_code="98052",
                    country="US",
                    phone_number="4255550101",
                ),
            ),
        )
    )
    assert customer.id
    await client.accept_agreement(customer.id, Contact(first_name="Tania", last_name="Carr", email="t@example.com"))
    availability = next(
        item
        for item in await client.availabilities(*BASIC, "US")
        if item.terms and item.terms[0].duration == "P1Y" and item.catalog_item_id
    )
    assert availability.catalog_item_id
    subscription_id = ""
    for quantity in range(1, 6):
        item = availability.catalog_item_id
        line = CartLineItem(
            catalog_item_id=item, quantity=quantity, term_duration="P1Y", billing_cycle=BillingCycle.MONTHLY
        )
        cart = await client.create_cart(customer.id, [line])
        assert cart.id
        result = await client.checkout(customer.id, cart.id)
        subscription_id = result.orders[0].line_items[0].subscription_id or ""
    return customer.id, subscription_id


def raw_caller(session: aiohttp.ClientSession, url: str, token: str) -> Callable[[], Awaitable[Any]]:
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

    async def call() -> Any:
        async with session.get(url, headers=headers) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"raw GET {url}: {response.status}")
            return json.loads(body)

    return call


@contextlib.contextmanager
def app_logging(enabled: bool) -> Any:
    """`configure_logging("INFO")` as the app does, writing to /dev/null; restored afterwards."""
    if not enabled:
        yield
        return
    with open(os.devnull, "w") as sink, logging_configured("INFO") as handler:
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(sink)
        yield


async def measure(call: Callable[[], Awaitable[Any]], calls: int, figures: Figures | None) -> None:
    wall0, cpu0 = time.perf_counter(), time.process_time()
    latencies = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        latencies.append(time.perf_counter() - started)
    if figures is not None:
        figures.wall.append((time.perf_counter() - wall0) / calls)
        figures.cpu.append((time.process_time() - cpu0) / calls)
        figures.latencies.extend(latencies)
        figures.p50.append(statistics.median(latencies))


async def run(args: argparse.Namespace) -> int:
    token = secrets.token_urlsafe(24)
    with sandbox_process(token) as url:
        connector = aiohttp.TCPConnector(limit=10)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = PartnerCenterClient(session, base_url=url, price_sheet_url=url, tokens=StaticTokenProvider(token))
            customer_id, subscription_id = await seed(client)
            endpoints = [
                Endpoint(
                    "GET one subscription",
                    f"/v1/customers/{customer_id}/subscriptions/{subscription_id}",
                    lambda: client.subscription(customer_id, subscription_id),
                ),
                Endpoint(
                    "GET 5 subscriptions",
                    f"/v1/customers/{customer_id}/subscriptions",
                    lambda: client.subscriptions(customer_id),
                ),
                Endpoint("GET country rules", "/v1/countryvalidationrules/US", lambda: client.country_rules("US")),
            ]
            results: dict[str, dict[str, Figures]] = {}
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            for endpoint in endpoints:
                callers = {
                    "raw": raw_caller(session, url + endpoint.path, token),
                    "client": endpoint.call,
                    "client+log": endpoint.call,
                }
                figures = {variant: Figures() for variant in VARIANTS}
                for variant in VARIANTS:  # warm-up: caches, connection pool, pydantic's validators
                    with app_logging(variant == "client+log"):
                        await measure(callers[variant], args.warmup, None)
                for round_number in range(args.rounds):
                    shift = round_number % len(VARIANTS)
                    for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                        profiling = profiler is not None and variant == "client"
                        with app_logging(variant == "client+log"):
                            if profiling:
                                profiler.enable()  # type: ignore[union-attr]
                            await measure(callers[variant], args.calls, figures[variant])
                            if profiling:
                                profiler.disable()  # type: ignore[union-attr]
                results[endpoint.name] = figures
    report(args, results)
    if profiler is not None:
        profiler.dump_stats(args.profile)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        out()
        out(f"PROFILE of the 'client' calls (own time, top 25; written to {args.profile})")
        out(text.getvalue())
    return 0


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def report(args: argparse.Namespace, results: dict[str, dict[str, Figures]]) -> None:
    out(f"Partner Center client benchmark — {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC")
    out(
        f"Python {platform.python_version()}, aiohttp {metadata.version('aiohttp')}, "
        f"pydantic {metadata.version('pydantic')}; {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds x {args.calls} sequential calls per variant, {args.warmup} warm-up calls"
    )
    out()
    header = (
        f"{'endpoint':<22} {'variant':<11} {'p50 µs':>7} {'p99 µs':>7} {'mean µs':>8} {'CPU µs/call':>11} "
        f"{'p50 ratio':>9} {'rounds min-max':>14} {'mean ratio':>10} {'CPU ratio':>9}"
    )
    out(header)
    out("-" * len(header))
    verdicts = []
    for name, figures in results.items():
        raw = figures["raw"]
        raw_p50 = statistics.median(raw.latencies)
        for variant in VARIANTS:
            current = figures[variant]
            p50 = statistics.median(current.latencies)
            mean = statistics.median(current.wall)
            cpu = statistics.median(current.cpu)
            per_round = [mine / theirs for mine, theirs in zip(current.p50, raw.p50, strict=True)]
            spread = f"{min(per_round):.2f}-{max(per_round):.2f}" if variant != "raw" else "-"
            out(
                f"{name:<22} {variant:<11} {p50 * 1e6:>7.0f} {percentile(current.latencies, 0.99) * 1e6:>7.0f} "
                f"{mean * 1e6:>8.0f} {cpu * 1e6:>11.0f} {p50 / raw_p50:>8.2f}x {spread:>14} "
                f"{mean / statistics.median(raw.wall):>9.2f}x {cpu / statistics.median(raw.cpu):>8.2f}x"
            )
            if variant != "raw":
                extra_cpu = (cpu - statistics.median(raw.cpu)) * 1e6
                verdicts.append((name, variant, p50 / raw_p50, (p50 - raw_p50) * 1e6, extra_cpu))
        out()
    out(f"TARGETS (printed, not asserted): client time per GET (median call) <= {TARGET_RATIO}x raw aiohttp")
    for name, variant, ratio, extra, extra_cpu in verdicts:
        verdict = "PASS" if ratio <= TARGET_RATIO else "MISS"
        out(f"  {verdict}  {name}, {variant}: {ratio:.2f}x raw (+{extra:.0f} µs per call, +{extra_cpu:.0f} µs CPU)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve-sandbox", metavar="DATABASE_URL", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="4 rounds of 300 calls (about 15 s)")
    parser.add_argument("--rounds", type=int, default=10, help="rounds per endpoint (default 10)")
    parser.add_argument("--calls", type=int, default=600, help="sequential calls per variant per round")
    parser.add_argument("--warmup", type=int, default=500, help="unmeasured calls per variant first")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the 'client' variant's calls into FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.calls, args.warmup = 4, 300, 200
    if not (1 <= args.rounds <= 100 and 1 <= args.calls <= 100_000 and 0 <= args.warmup <= 100_000):
        parser.error("rounds 1-100, calls 1-100000, warmup 0-100000")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.serve_sandbox:
        asyncio.run(serve_sandbox(args.serve_sandbox, os.environ["SANDBOX_BENCH_TOKEN"]))
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
