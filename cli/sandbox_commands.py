"""`cspbot sandbox …`: serve the Partner Center sandbox alone, or drive the running bot's sandbox.

    cspbot sandbox [serve] [--port 8088] [--host 127.0.0.1] [--token-file FILE]
    cspbot sandbox clock [--advance 30d|1M|P1Y… | --set 2027-01-01T09:00Z] [--json]
    cspbot sandbox fault add [--status 429|5xx] [--kind KIND] [--method M] [--path GLOB] [--nth N] [--times N] …
    cspbot sandbox fault list [--json] | cspbot sandbox fault clear [ID]

`clock` and `fault` talk to the sandbox's admin endpoint (`/_sandbox/`). They find the bot's
built-in sandbox through the admin file it writes while it runs (`Settings.sandbox_admin_file`,
beside the SQLite database), or a sandbox served with `cspbot sandbox serve` through `--url` and
its token file. The bot reads Microsoft's "now" from the sandbox's clock, so its bills and
subscriptions follow a moved clock.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import secrets
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from cli.errors import CliError
from sandbox import Duration, run_sandbox
from sandbox.admin_file import read_admin_file
from sandbox.clock import iso, parse_instant
from sandbox.faults import FAULT_KINDS
from services import formatting
from services.settings import DEFAULT_VAR_DIR, Settings, is_loopback_host

DEFAULT_SANDBOX_TOKEN_PATH = DEFAULT_VAR_DIR / "partner-center-sandbox.token"
ADMIN_TIMEOUT_SECONDS = 10
NOT_RUNNING = "No running built-in sandbox found"
START_IT = "start the bot with `make run` (or `python app.py`)"

if TYPE_CHECKING:
    from cli.output import Commands


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# ---- argument parsing -------------------------------------------------------------------------


def add_sandbox_commands(commands: Commands) -> None:
    """Add `sandbox` (serve alone; `clock`, `fault`) to the CLI's subcommands."""
    sandbox = commands.add_parser(
        "sandbox",
        help="the Partner Center sandbox: serve it alone, or move the running bot's sandbox clock and inject faults",
        description="Without a command: serve the sandbox alone (like `sandbox serve`).",
    )
    _add_serve_flags(sandbox, defaults=True)  # `cspbot sandbox --port N` serves, as it always has
    sandbox.set_defaults(sync_handler=_serve)
    actions = sandbox.add_subparsers(dest="sandbox_action", metavar="{serve,clock,fault}")

    serve = actions.add_parser("serve", help="serve the Partner Center sandbox alone (Ctrl-C stops it)")
    _add_serve_flags(serve, defaults=False)

    clock = actions.add_parser(
        "clock",
        help="show or move the sandbox's clock (Microsoft's 'now' for the bot)",
        description="Without a flag: show the sandbox's time. Renewals and expiries due by a new time happen at once.",
    )
    move = clock.add_mutually_exclusive_group()
    move.add_argument(
        "--advance",
        type=_duration,
        metavar="DURATION",
        help="move forward: 30d, 2w, 1M (or 1mo), 1y, 12h, 90min, or ISO 8601 (P1M, PT2H)",
    )
    move.add_argument(
        "--set",
        dest="set_to",
        type=_instant,
        metavar="INSTANT",
        help="set it: 2027-01-01T09:00Z (UTC unless given), or now (back to this machine's clock)",
    )
    _add_target_flags(clock)
    clock.add_argument("--json", action="store_true", help="the sandbox's answer as JSON")
    clock.set_defaults(sync_handler=_clock)

    faults = actions.add_parser("fault", help="make the sandbox fail calls (throttling, 5xx, latency, drops)")
    fault_actions = faults.add_subparsers(dest="fault_action", required=True, metavar="{add,list,clear}")
    add = fault_actions.add_parser(
        "add",
        help="fail matching calls: --status 429 throttles, a 5xx errors, --kind for the others",
        description="Matching calls (method and path glob) fail from the Nth on, --times in a row (or at --rate).",
    )
    add.add_argument("--status", type=int, metavar="CODE", help="429 (throttling, with Retry-After) or a 5xx")
    add.add_argument("--kind", choices=sorted(FAULT_KINDS), help="default: throttle for 429, error for a 5xx")
    add.add_argument("--method", default="*", metavar="METHOD", help="GET, POST, PATCH, … (default: any)")
    add.add_argument(
        "--path",
        default="*",
        metavar="GLOB",
        help="request path glob, e.g. '/v1/customers/*/subscriptions' (default: any)",
    )
    add.add_argument(
        "--nth", type=_positive, default=None, metavar="N", help="the first matching call that fails (default: 1)"
    )
    add.add_argument(
        "--times", type=_positive, default=1, metavar="N", help="how many matching calls in a row (default: 1)"
    )
    add.add_argument(
        "--rate", type=float, default=None, metavar="P", help="instead: fail each matching call with probability P"
    )
    add.add_argument("--retry-after", type=int, default=None, metavar="SECONDS", help="throttle: the Retry-After sent")
    add.add_argument("--latency-ms", type=int, default=None, metavar="MS", help="latency: how long each call waits")
    add.add_argument("--polls", type=int, default=None, metavar="N", help="accepted: 202 answers before the result")
    _add_target_flags(add)
    add.set_defaults(sync_handler=_fault_add, usage_error=add.error, check_usage=check_fault_add)

    listing = fault_actions.add_parser("list", help="the faults with how many calls each matched and failed")
    _add_target_flags(listing)
    listing.add_argument("--json", action="store_true", help="the sandbox's answer as JSON")
    listing.set_defaults(sync_handler=_fault_list)

    clear = fault_actions.add_parser("clear", help="remove all faults, or one by its id")
    clear.add_argument("fault_id", nargs="?", metavar="ID", help="only this fault (ids in `fault list`)")
    _add_target_flags(clear)
    clear.set_defaults(sync_handler=_fault_clear)


def _add_serve_flags(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    # The `serve` command's flags keep what was given before it (`sandbox --port 9000 serve`).
    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    parser.add_argument("--port", type=int, default=default(8088), help="default: 8088")
    parser.add_argument("--host", default=default("127.0.0.1"), help="default: 127.0.0.1 (loopback)")
    parser.add_argument(
        "--token-file",
        dest="serve_token_file",
        metavar="FILE",
        type=pathlib.Path,
        default=default(DEFAULT_SANDBOX_TOKEN_PATH),
        help=f"the bearer token callers must send; created with a random token if missing (default: "
        f"{DEFAULT_SANDBOX_TOKEN_PATH})",
    )


def _add_target_flags(parser: argparse.ArgumentParser) -> None:
    target = parser.add_argument_group("which sandbox (default: the running bot's, found through its admin file)")
    target.add_argument(
        "--url", metavar="URL", help="a sandbox served by `cspbot sandbox serve`, e.g. http://127.0.0.1:8088"
    )
    target.add_argument(
        "--token-file",
        type=pathlib.Path,
        default=None,
        metavar="FILE",
        help=f"with --url: the file holding its token (default: {DEFAULT_SANDBOX_TOKEN_PATH})",
    )


_SHORT_DURATION = re.compile(r"^(\d+)\s*([A-Za-z]+)$")
_UNITS = {"y": "{}Y", "M": "{}M", "mo": "{}M", "w": "{}W", "d": "{}D", "h": "T{}H", "min": "T{}M"}


def _duration(text: str) -> str:
    """An ISO 8601 duration for the sandbox from `30d`, `1M`, `2w`, `12h`, `90min`, `1y` or ISO itself."""
    value = text.strip()
    if value[:1] in ("P", "p"):
        try:
            Duration.parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 duration like P1M or PT2H") from None
        return value.upper()
    match = _SHORT_DURATION.match(value)
    if match is not None:
        amount, unit = match.groups()
        if unit == "m":
            raise argparse.ArgumentTypeError(
                f"{text!r} is ambiguous: write {amount}M or {amount}mo for months, {amount}min for minutes"
            )
        pattern = _UNITS.get(unit if unit == "M" else unit.lower())
        if pattern is not None and int(amount) > 0:
            return "P" + pattern.format(int(amount))
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a duration: give a number and a unit (30d, 2w, 1M, 1y, 12h, 90min) or ISO 8601 (P1M)"
    )


def _instant(text: str) -> str:
    if text.strip().lower() == "now":
        return iso(datetime.now(UTC)) or ""
    try:
        return iso(parse_instant(text)) or ""
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date and time like 2027-01-01T09:00Z") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return value


# ---- serving alone ------------------------------------------------------------------------------


def _serve_token(path: pathlib.Path) -> str:
    if path.exists():
        token = path.read_text(encoding="utf-8").strip()
        if not token:
            raise CliError(f"{path} is empty; delete it to get a new token")
        return token
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
    return token


def _serve(args: argparse.Namespace, settings: Settings) -> None:
    if not 1 <= args.port <= 65535:
        raise CliError("--port must be between 1 and 65535")
    if not is_loopback_host(args.host):
        raise CliError("the sandbox accepts writes from anyone holding its token; serve it on loopback only")
    token = _serve_token(args.serve_token_file)
    _out(
        f"Partner Center sandbox on http://{args.host}:{args.port} (admin endpoint /_sandbox); "
        f"send 'Authorization: Bearer <token in {args.serve_token_file}>'. Ctrl-C stops it."
    )
    run_sandbox(args.port, settings.sandbox_database_url, token, host=args.host)


# ---- the admin endpoint -----------------------------------------------------------------------------


class NoSuchResource(CliError):
    """The admin endpoint answered 404 (a fault id that is not there)."""


@dataclass(frozen=True)
class AdminEndpoint:
    """A sandbox's `/_sandbox/` endpoint and how to explain that nothing answers there."""

    url: str
    token: str
    not_answering: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """The JSON answer (None for 204). Failures become one clear CliError."""
        request = urllib.request.Request(
            f"{self.url}/_sandbox{path}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=ADMIN_TIMEOUT_SECONDS) as response:
                payload = response.read()
        except urllib.error.HTTPError as refused:
            if refused.code == 404:
                raise NoSuchResource(self._refusal(refused)) from None
            raise CliError(self._refusal(refused)) from None
        except (urllib.error.URLError, ConnectionError) as failure:
            reason = getattr(failure, "reason", failure)
            if isinstance(reason, ConnectionRefusedError | ConnectionResetError):
                raise CliError(self.not_answering) from None
            raise CliError(f"the sandbox at {self.url} did not answer: {reason}") from None
        except TimeoutError:
            raise CliError(f"the sandbox at {self.url} did not answer within {ADMIN_TIMEOUT_SECONDS} s") from None
        return json.loads(payload) if payload else None

    def _refusal(self, refused: urllib.error.HTTPError) -> str:
        if refused.code == 401:
            return (
                f"the sandbox at {self.url} refused the token: it is not the sandbox that wrote it "
                "(a sandbox's token changes with every start)"
            )
        try:
            body = json.loads(refused.read() or b"null")
        except ValueError:
            body = None
        description = body.get("description") if isinstance(body, dict) else None
        return f"the sandbox refused: {description}" if description else f"the sandbox answered HTTP {refused.code}"


def _endpoint(args: argparse.Namespace, settings: Settings) -> AdminEndpoint:
    if args.url:
        url = args.url.strip().rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise CliError(f"--url {args.url!r} is not an http:// address like http://127.0.0.1:8088")
        token_file = args.token_file or DEFAULT_SANDBOX_TOKEN_PATH
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise CliError(
                f"cannot read the sandbox's token from {token_file} ({error.strerror or error}): give --token-file"
            ) from None
        if not token:
            raise CliError(f"{token_file} is empty: give the token file of the sandbox at {url}")
        return AdminEndpoint(url, token, f"nothing answers at {url}: start it with `cspbot sandbox serve`")
    if args.token_file is not None:
        raise CliError("--token-file goes with --url (the running bot's sandbox is found through its admin file)")
    if not settings.uses_partner_center_sandbox:
        raise CliError(
            "PARTNER_CENTER_URL is set, so the bot talks to Microsoft, not the built-in sandbox: there is no clock "
            "to move or fault to inject. Give --url for a sandbox served with `cspbot sandbox serve`."
        )
    path = settings.sandbox_admin_file
    try:
        admin = read_admin_file(path)
    except FileNotFoundError:
        raise CliError(f"{NOT_RUNNING} (no {path}): {START_IT}.") from None
    except (OSError, ValueError) as error:
        raise CliError(f"cannot read the sandbox's admin file: {getattr(error, 'strerror', None) or error}") from None
    return AdminEndpoint(
        admin.url,
        admin.token,
        f"{NOT_RUNNING}: nothing answers at {admin.url} ({path} is left from a bot that stopped): {START_IT}.",
    )


# ---- clock ----------------------------------------------------------------------------------------


def _clock(args: argparse.Namespace, settings: Settings) -> None:
    endpoint = _endpoint(args, settings)
    before = endpoint.call("GET", "/clock")
    if args.advance is None and args.set_to is None:
        _out(_json(before) if args.json else f"Sandbox time: {_describe_clock(before)}.")
        return
    after = endpoint.call("POST", "/clock", {"advance": args.advance} if args.advance else {"set": args.set_to})
    if args.json:
        _out(_json(after))
        return
    _out(f"Sandbox time: {_describe_clock(after)}; it was {_readable(before['now'])}.")
    ends = after.get("termEnds") or {}
    counts = [
        (len(ends.get(key) or []), label)
        for key, label in (
            ("renewed", "renewed"),
            ("expiredSuspended", "expired (suspended)"),
            ("endedNotRenewing", "ended (not renewing)"),
        )
    ]
    if any(count for count, _ in counts):
        _out(
            "Subscriptions at the end of their term: "
            + ", ".join(f"{count} {label}" for count, label in counts if count)
            + "."
        )


def _readable(instant: str) -> str:
    return parse_instant(instant).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe_clock(clock: dict[str, Any]) -> str:
    if clock.get("frozen"):
        return f"{_readable(clock['now'])} (frozen)"
    return f"{_readable(clock['now'])} ({_offset(parse_instant(clock['now']) - datetime.now(UTC))})"


def _offset(difference: timedelta) -> str:
    minutes = round(abs(difference.total_seconds()) / 60)
    if minutes == 0:
        return "the same as this machine's clock"
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [
        f"{value} {unit}{'' if value == 1 else 's'}"
        for value, unit in ((days, "day"), (hours, "hour"), (minutes, "minute"))
        if value
    ]
    return f"{' '.join(parts)} {'ahead of' if difference > timedelta() else 'behind'} this machine's clock"


# ---- faults -----------------------------------------------------------------------------------------


def check_fault_add(args: argparse.Namespace) -> None:
    """Usage checks of `fault add` (run while parsing): the kind follows from --status unless given."""
    if args.kind is None:
        if args.status == 429:
            args.kind = "throttle"
        elif args.status is not None and 500 <= args.status <= 599:
            args.kind = "error"
        else:
            args.usage_error("give --status 429 (throttling) or a 5xx status, or --kind")
    if args.kind == "throttle" and args.status not in (None, 429):
        args.usage_error("a throttle fault always answers 429")
    if args.rate is not None and args.nth is not None:
        args.usage_error("give either --nth or --rate")


def _fault_add(args: argparse.Namespace, settings: Settings) -> None:
    kind = args.kind
    body: dict[str, Any] = {"kind": kind, "method": args.method, "path": args.path, "repeat": args.times}
    if args.rate is not None:
        body["rate"] = args.rate
    else:
        body["nth"] = args.nth or 1
    for key, value in (
        ("status", args.status if kind != "throttle" else None),
        ("retryAfter", args.retry_after),
        ("latencyMs", args.latency_ms),
        ("polls", args.polls),
    ):
        if value is not None:
            body[key] = value
    rule = _endpoint(args, settings).call("POST", "/faults", body)
    _out(f"Added fault {_describe_fault(rule)}.")


def _fault_list(args: argparse.Namespace, settings: Settings) -> None:
    rules = _endpoint(args, settings).call("GET", "/faults")["faults"]
    if args.json:
        _out(_json(rules))
        return
    if not rules:
        _out("No faults.")
    for rule in rules:
        _out(f"{_describe_fault(rule)}: matched {rule['matched']}, failed {rule['fired']}")


def _fault_clear(args: argparse.Namespace, settings: Settings) -> None:
    endpoint = _endpoint(args, settings)
    if args.fault_id:
        fault_id = args.fault_id.strip()
        try:
            endpoint.call("DELETE", f"/faults/{urllib.parse.quote(fault_id, safe='')}")
        except NoSuchResource:
            raise CliError(f"no fault {fault_id} (`cspbot sandbox fault list` shows their ids)") from None
        _out(f"Removed fault {fault_id}.")
    else:
        endpoint.call("DELETE", "/faults")
        _out("Removed all faults.")


def _describe_fault(rule: dict[str, Any]) -> str:
    what = {
        "throttle": f"429 (Retry-After {rule['retryAfter']} s)",
        "error": f"{rule['status'] or 500}",
        "error_after_commit": f"{rule['status'] or 500} after doing the call",
        "latency": f"{rule['latencyMs']} ms latency",
        "drop": "connection dropped",
        "drop_after_commit": "connection dropped after doing the call",
        "accepted": f"202 Accepted, {formatting.plural(int(rule['polls']), 'poll', 'polls')}",
    }.get(rule["kind"], rule["kind"])
    if rule.get("rate") is not None:
        when = f"{rule['rate']:.0%} of calls"
    else:
        first, count = rule["nth"], rule["repeat"]
        when = f"call {first}" if count == 1 else f"calls {first}-{first + count - 1}"
    return f"{rule['id']} {what} on {rule['method']} {rule['path']}, {when}"
