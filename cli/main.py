"""`cspbot`: what the reseller's operator does without Teams (SPEC "Reseller operator").

    cspbot org create|list|show|update|link-tenant ...
    cspbot member add|remove|roles|language ...
    cspbot alerts list|ack ...
    cspbot billing show | set-cycle [--day 1-31|last] [--timezone ZONE] --effective YYYY-MM-DD
    cspbot package [--app-id GUID] [--out dist/appPackage.zip] [--version X.Y.Z] [--bot-domain HOST]
    cspbot sandbox [serve] [--port 8088] | sandbox clock [--advance 1M | --set INSTANT] | sandbox fault add|list|clear

Settings come from the environment (`DATABASE_URL`, `MICROSOFT_APP_ID`, ...), exactly as for the
bot, so the CLI and a running bot share one database. Results go to stdout; failures are one
`error: ...` line on stderr with exit code 1 (argparse usage errors: 2); logs (WARNING and above;
readable lines at a terminal, else JSON) go to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import pathlib
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cli.errors import CliError
from services.errors import DomainError
from services.logging_context import correlation_scope, logging_configured
from services.roles import Role

# The rest is imported where it is used: `cspbot --help` (and a usage error) loads none of the services, the
# database or the sandbox, and a command loads only its own (see COMMANDS).
if TYPE_CHECKING:
    from services.alerts import AlertView
    from services.container import Services
    from services.organisations import MemberView, OrganisationView
    from services.settings import Settings

    Handler = Callable[[argparse.Namespace, Services], Awaitable[None]]

log = logging.getLogger("cspbot.cli")

PROG = "cspbot"
DEFAULT_PACKAGE_PATH = pathlib.Path("dist") / "appPackage.zip"
ROLE_NAMES = ", ".join(role.value for role in Role)

# Help per profile field; a field missing here still gets a flag (PROFILE_FIELDS is the source).
PROFILE_HELP: dict[str, str] = {
    "name": "company name",
    "address_line1": "street address (Microsoft requires the company address to create a tenant)",
    "address_line2": "second address line",
    "city": "city",
    "state": "state or region",
    "postal_code": "postal code",
    "country": "two-letter ISO country code, e.g. GB",
    "contact_first_name": "contact's first name (becomes the new tenant's first admin user)",
    "contact_last_name": "contact's last name",
    "contact_email": "contact's e-mail (tenant credentials are e-mailed there)",
    "contact_phone": "contact's phone number",
    "culture": "culture, e.g. en-GB",
    "language": "language, e.g. en",
    "registration_number": "organisation registration number (required by Microsoft in some countries)",
    "domain_prefix": "proposed domain prefix: <prefix>.onmicrosoft.com",
    "allow_self_approval": "let an approver approve their own suspension requests",
}


def _out(text: str = "") -> None:
    # Resolved at call time so a replaced sys.stdout (tests, redirection) is honoured.
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")


def _flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def _actor() -> str:
    """The audit log's `who` for CLI changes: the operator's login name."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no LOGNAME/USER and no passwd entry (some containers)
        login = "unknown"
    return f"operator:{login}"


# ---- argument parsing -------------------------------------------------------------------------


def _add_profile_flags(parser: argparse.ArgumentParser, *, name_required: bool) -> None:
    from services.organisations import PROFILE_FIELDS

    group = parser.add_argument_group("organisation profile")
    for field in PROFILE_FIELDS:
        help_text = PROFILE_HELP.get(field, field.replace("_", " "))
        if field == "allow_self_approval":
            group.add_argument(
                _flag(field), dest=field, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif field == "name":
            group.add_argument(_flag(field), dest=field, required=name_required, metavar="NAME", help=help_text)
        else:
            group.add_argument(_flag(field), dest=field, metavar=field.upper(), help=help_text)


def _add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def build_parser(command: str | None = "*") -> argparse.ArgumentParser:
    """The command tree; each leaf sets `handler` (async, needs the database) or `sync_handler`. With a
    command name, only that command gets its actions and flags (the others are listed by name and help);
    with None, none does (enough for `cspbot --help`); by default every one does."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operator commands for the CSP self-service Teams bot. Uses DATABASE_URL like the bot.",
    )
    commands = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{org,member,alerts,tenant,directory,prices,catalog,billing,package,sandbox}",
    )
    chosen = COMMANDS[command][1] if command in COMMANDS else None
    for name, (help_text, add) in COMMANDS.items():
        if name in commands.choices:  # added with another (`prices` and `catalog` come together)
            continue
        if command == "*" or add is chosen:
            add(commands)
        else:
            commands.add_parser(name, help=help_text)
    return parser


def _command(commands: Any, name: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=COMMANDS[name][0])
    return parser


def _add_sandbox(commands: Any) -> None:
    from cli.sandbox_commands import add_sandbox_commands

    add_sandbox_commands(commands)  # sandbox [serve] | sandbox clock | sandbox fault


def _add_prices_and_catalog(commands: Any) -> None:
    from cli.catalog_commands import add_catalog_commands

    add_catalog_commands(commands)  # prices, catalog


def _add_org(commands: Any) -> None:
    org = _command(commands, "org").add_subparsers(
        dest="action", required=True, metavar="{create,list,show,update,link-tenant,approvals-channel,warnings,policy}"
    )
    create = org.add_parser("create", help="register a customer organisation")
    create.add_argument("slug", metavar="SLUG", help="short name: 2-63 lower-case letters, digits, dashes")
    _add_profile_flags(create, name_required=True)
    create.set_defaults(handler=_org_create)

    listing = org.add_parser("list", help="list the organisations")
    _add_json_flag(listing)
    listing.set_defaults(handler=_org_list)

    show = org.add_parser("show", help="an organisation's profile, tenant and members")
    show.add_argument("slug", metavar="SLUG")
    _add_json_flag(show)
    show.set_defaults(handler=_org_show)

    update = org.add_parser("update", help="change profile fields (only the flags given)")
    update.add_argument("slug", metavar="SLUG")
    _add_profile_flags(update, name_required=False)
    update.set_defaults(handler=_org_update)

    link = org.add_parser("link-tenant", help="link the organisation's Teams (Microsoft Entra) tenant")
    link.add_argument("slug", metavar="SLUG")
    link.add_argument("tenant_id", metavar="TENANT_ID", help="the tenant id (a GUID)")
    link.set_defaults(handler=_org_link_tenant)

    # spending that needs an approver (docs/approvals.md)
    policy = org.add_parser("policy", help="when a purchase or more seats need an approver (only the flags given)")
    policy.add_argument("slug", metavar="SLUG")
    policy.add_argument(
        "--monthly-threshold",
        metavar="AMOUNT",
        help="a change adding more than this a month needs an approver (none: no threshold)",
    )
    policy.add_argument(
        "--commitments",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether any 1-year or 3-year commitment needs an approver",
    )
    policy.add_argument("--annual-limit", metavar="AMOUNT", help="spending over this a year needs an approver ('none')")
    policy.add_argument("--currency", metavar="CODE", help="the currency of the amounts (default USD)")
    policy.set_defaults(handler=_org_policy)

    # where suspension approval cards are also posted
    channel = org.add_parser(
        "approvals-channel", help="also post suspension approval cards in this Teams channel (or --clear)"
    )
    channel.add_argument("slug", metavar="SLUG")
    channel.add_argument(
        "conversation_id",
        metavar="CONVERSATION_ID",
        nargs="?",
        help="the channel's conversation id (the bot must have been mentioned there once); "
        "without it, show the current channel and the ones the bot knows",
    )
    channel.add_argument("--clear", action="store_true", help="stop posting to a channel (approvers' chats only)")
    channel.set_defaults(handler=_org_approvals_channel, usage_error=channel.error)

    # the warnings before money is locked in (docs/renewals.md)
    warnings = org.add_parser(
        "warnings", help="an organisation's warnings (seat window, renewal, idle licences): show or change"
    )
    warnings.add_argument("slug", metavar="SLUG")
    warnings.add_argument("--on", action="append", default=[], metavar="KIND", help="seat_window, renewal or idle")
    warnings.add_argument("--off", action="append", default=[], metavar="KIND", help="turn a warning off")
    warnings.add_argument("--lead", metavar="DAYS", help="renewal lead times in days, e.g. 30,7")
    warnings.add_argument("--seat-window-hours", metavar="HOURS", help="warn this long before a seat window closes")
    warnings.add_argument("--idle-days", metavar="DAYS", help="unassigned or not signed in this long is idle")
    warnings.add_argument(
        "--exclude", metavar="OFFERS", help="PRODUCT:SKU offers left out of idle warnings, comma-separated ('' none)"
    )
    warnings.add_argument("--quiet", metavar="HH-HH", help="quiet hours in the organisation's time zone, or off")
    warnings.add_argument("--timezone", metavar="ZONE", help="the organisation's time zone, e.g. Europe/Oslo")
    warnings.add_argument(
        "--channel",
        metavar="CONVERSATION_ID",
        help="also post warnings in this channel of the organisation (the bot must have been mentioned there "
        "once; see `org approvals-channel SLUG` for the ones it knows); '' stops",
    )
    _add_json_flag(warnings)
    warnings.set_defaults(handler=_org_warnings)


def _add_member(commands: Any) -> None:
    member = _command(commands, "member").add_subparsers(
        dest="action", required=True, metavar="{add,remove,roles,language}"
    )
    add = member.add_parser("add", help="register a member by their work e-mail / sign-in name")
    add.add_argument("slug", metavar="SLUG")
    add.add_argument("email", metavar="EMAIL")
    add.add_argument(
        "--role", dest="roles", action="append", required=True, metavar="ROLE", help=f"repeatable: {ROLE_NAMES}"
    )
    add.add_argument("--name", dest="display_name", default="", metavar="DISPLAY_NAME", help="display name")
    add.set_defaults(handler=_member_add)

    remove = member.add_parser("remove", help="remove a member")
    remove.add_argument("slug", metavar="SLUG")
    remove.add_argument("email", metavar="EMAIL")
    remove.set_defaults(handler=_member_remove)

    roles = member.add_parser("roles", help="add or remove roles of a member")
    roles.add_argument("slug", metavar="SLUG")
    roles.add_argument("email", metavar="EMAIL")
    roles.add_argument("--add", action="append", default=[], metavar="ROLE", help=f"repeatable: {ROLE_NAMES}")
    roles.add_argument("--remove", action="append", default=[], metavar="ROLE", help="repeatable")
    roles.set_defaults(handler=_member_roles, usage_error=roles.error)

    language = member.add_parser("language", help="the language a member reads (nb, de-DE, ...; auto follows Teams)")
    language.add_argument("slug", metavar="SLUG")
    language.add_argument("email", metavar="EMAIL")
    language.add_argument("language", metavar="LANGUAGE", help="a language the bot speaks, or auto")
    language.set_defaults(handler=_member_language)


def _add_alerts(commands: Any) -> None:
    alerts = _command(commands, "alerts").add_subparsers(dest="action", required=True, metavar="{list,ack}")
    alert_list = alerts.add_parser("list", help="open alerts")
    alert_list.add_argument("--all", action="store_true", help="include acknowledged alerts")
    _add_json_flag(alert_list)
    alert_list.set_defaults(handler=_alerts_list)

    ack = alerts.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("alert_id", metavar="ID", type=int)
    ack.set_defaults(handler=_alerts_ack)


def _add_tenant(commands: Any) -> None:
    tenant = _command(commands, "tenant").add_subparsers(
        dest="action", required=True, metavar="{show,resend-credentials}"
    )
    tenant_show = tenant.add_parser("show", help="the tenant (created or linked), the MCA and the credentials e-mail")
    tenant_show.add_argument("slug", metavar="SLUG")
    _add_json_flag(tenant_show)
    tenant_show.set_defaults(handler=_tenant_show)
    resend = tenant.add_parser(
        "resend-credentials", help="deliver the first admin's sign-in e-mail that the mail server refused"
    )
    resend.add_argument("slug", metavar="SLUG")
    resend.set_defaults(handler=_tenant_resend)


def _add_billing(commands: Any) -> None:
    billing = _command(commands, "billing").add_subparsers(dest="action", required=True, metavar="{show,set-cycle}")
    billing_show = billing.add_parser("show", help="the cycle settings in force and planned, and the current cycle")
    _add_json_flag(billing_show)
    billing_show.set_defaults(handler=_billing_show)
    set_cycle = billing.add_parser(
        "set-cycle", help="a new cycle-end day and/or time zone for the cycles starting on or after a date"
    )
    set_cycle.add_argument("--day", default=None, metavar="1-31|last", help="cycle-end day (last = calendar months)")
    set_cycle.add_argument("--timezone", default=None, metavar="ZONE", help="IANA time zone deciding an event's day")
    set_cycle.add_argument(
        "--effective",
        required=True,
        type=_iso_date,
        metavar="YYYY-MM-DD",
        help="today or later; history is never re-cut",
    )
    set_cycle.set_defaults(handler=_billing_set_cycle, usage_error=set_cycle.error)


def _add_package(commands: Any) -> None:
    package = _command(commands, "package")
    package.add_argument(
        "--app-id", default=None, metavar="GUID", help="the bot's Microsoft App ID (default: MICROSOFT_APP_ID)"
    )
    package.add_argument(
        "--out", type=pathlib.Path, default=DEFAULT_PACKAGE_PATH, help=f"default: {DEFAULT_PACKAGE_PATH}"
    )
    package.add_argument("--version", default="1.0.0", help="app version MAJOR.MINOR.PATCH (default: 1.0.0)")
    package.add_argument("--bot-domain", default=None, metavar="HOST", help="host name for validDomains")
    package.set_defaults(sync_handler=_package)


def _add_secrets_key(commands: Any) -> None:
    secrets_key = _command(commands, "secrets-key")
    secrets_key.set_defaults(sync_handler=_secrets_key)


def _add_directory(commands: Any) -> None:
    from services.users.directory import CSV_COLUMNS as DIRECTORY_CSV_COLUMNS

    directory = _command(commands, "directory").add_subparsers(dest="action", required=True, metavar="{import,list}")
    load = directory.add_parser("import", help="add or update directory people from a CSV file (by e-mail)")
    load.add_argument("slug", metavar="ORG")
    load.add_argument("csv", metavar="CSV", type=pathlib.Path, help="header: " + ",".join(DIRECTORY_CSV_COLUMNS))
    load.set_defaults(handler=_directory_import)
    people = directory.add_parser("list", help="the people in an organisation's directory")
    people.add_argument("slug", metavar="ORG")
    people.set_defaults(handler=_directory_list)


def _add_mail(commands: Any) -> None:
    mail = _command(commands, "mail").add_subparsers(dest="action", required=True, metavar="{list,retry}")
    mail_list = mail.add_parser("list", help="the newest e-mails and their status (never their secrets)")
    mail_list.add_argument("--status", choices=("queued", "sent", "failed"), help="only this status")
    mail_list.add_argument("--limit", type=int, default=50)
    _add_json_flag(mail_list)
    mail_list.set_defaults(handler=_mail_list)
    mail_retry = mail.add_parser("retry", help="try a queued or failed e-mail again now")
    mail_retry.add_argument("message_id", metavar="ID", type=int)
    mail_retry.set_defaults(handler=_mail_retry)


# Every command: its line in `cspbot --help`, and what adds it with its actions and flags (and imports what
# they need). Only the command given is built; a test checks these lines are the built commands' own.
COMMANDS: dict[str, tuple[str, Callable[[Any], None]]] = {
    "org": ("customer organisations", _add_org),
    "member": ("people of an organisation and their roles", _add_member),
    "alerts": ("what needs a person", _add_alerts),
    "tenant": ("an organisation's Microsoft 365 tenant", _add_tenant),
    "billing": ("the reseller's billing cycle", _add_billing),
    "package": ("build the Teams app package (zip)", _add_package),
    "secrets-key": ("print a new key for SECRETS_KEY (seals passwords waiting for their e-mail)", _add_secrets_key),
    "sandbox": (
        "the Partner Center sandbox: serve it alone, or move the running bot's sandbox clock and inject faults",
        _add_sandbox,
    ),
    "directory": ("an organisation's own user directory", _add_directory),
    "prices": ("the reseller's price lists", _add_prices_and_catalog),
    "catalog": ("the catalog cache and its taxonomy", _add_prices_and_catalog),
    "mail": ("the outgoing e-mail outbox", _add_mail),
}


def _named_command(argv: Sequence[str]) -> str | None:
    """The command the arguments name (the first that is not an option), if it is one."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_named_command(arguments)).parse_args(arguments)
    if getattr(args, "handler", None) is _member_roles and not (args.add or args.remove):
        args.usage_error("give --add ROLE and/or --remove ROLE")
    if getattr(args, "handler", None) is _billing_set_cycle and args.day is None and args.timezone is None:
        args.usage_error("give --day and/or --timezone")
    if getattr(args, "handler", None) is _org_approvals_channel and args.clear and args.conversation_id:
        args.usage_error("give either CONVERSATION_ID or --clear")
    check_usage = getattr(args, "check_usage", None)
    if check_usage is not None:
        check_usage(args)
    return args


# ---- rendering --------------------------------------------------------------------------------


def _json(value: Any) -> str:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat()
        if isinstance(item, frozenset | set):
            return sorted(item)
        raise TypeError(f"not JSON serialisable: {type(item).__name__}")

    return json.dumps(value, indent=2, ensure_ascii=False, default=default)


def _roles(member: MemberView) -> str:
    return ", ".join(sorted(member.roles))


def _member_line(member: MemberView) -> str:
    name = f" ({member.display_name})" if member.display_name else ""
    bound = "" if member.aad_object_id else "  [not signed in yet]"
    return f"{member.email}{name}: {_roles(member)}{bound}"


def _render_organisation(org: OrganisationView) -> list[str]:
    address = ", ".join(
        part
        for part in (org.address_line1, org.address_line2, org.city, org.state, org.postal_code, org.country)
        if part
    )
    contact_name = " ".join(part for part in (org.contact_first_name, org.contact_last_name) if part)
    contact = ", ".join(part for part in (contact_name, org.contact_email, org.contact_phone) if part)
    tenant = org.teams_tenant_id or f"not linked (cspbot org link-tenant {org.slug} TENANT_ID)"
    rows = [
        ("Organisation", f"{org.slug} — {org.name}"),
        ("Teams tenant", tenant),
        ("Address", address or "-"),
        ("  line 1", org.address_line1),
        ("  line 2", org.address_line2),
        ("  city", org.city),
        ("  state/region", org.state),
        ("  postal code", org.postal_code),
        ("  country", org.country),
        ("Contact", contact or "-"),
        ("Culture", org.culture),
        ("Language", org.language),
        ("Registration no.", org.registration_number),
        ("Domain prefix", f"{org.domain_prefix}.onmicrosoft.com" if org.domain_prefix else ""),
        ("Self-approval", "allowed" if org.allow_self_approval else "not allowed"),
    ]
    width = max(len(label) for label, _ in rows) + 2
    lines = [f"{label + ':':<{width}}{value or '-'}" for label, value in rows]
    lines.append(f"Members ({len(org.members)}):")
    if org.members:
        lines.extend("  " + _member_line(m) for m in org.members)
    else:
        lines.append(f"  none (cspbot member add {org.slug} EMAIL --role admin)")
    return lines


def _alert_dict(alert: AlertView, slugs: dict[int, str]) -> dict[str, Any]:
    data = asdict(alert)
    data["organisation"] = slugs.get(alert.organisation_id) if alert.organisation_id is not None else None
    return data


def _alert_line(alert: AlertView, slugs: dict[int, str]) -> str:
    where = ""
    if alert.organisation_id is not None:
        where = f" [{slugs.get(alert.organisation_id, f'organisation #{alert.organisation_id}')}]"
    seen = (
        f", seen {alert.occurrences} times, last {alert.last_seen_at:%Y-%m-%d %H:%M} UTC"
        if alert.occurrences > 1
        else ""
    )
    status = "" if alert.status == "open" else f" ({alert.status} by {alert.acknowledged_by})"
    return (
        f"#{alert.id} {alert.severity} {alert.code}{where}: {alert.message}"
        f" (since {alert.created_at:%Y-%m-%d %H:%M} UTC{seen}){status}"
    )


# ---- commands ---------------------------------------------------------------------------------


def _profile_changes(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the operator gave: absent flags must not blank stored values."""
    from services.organisations import PROFILE_FIELDS

    return {field: getattr(args, field) for field in PROFILE_FIELDS if getattr(args, field) is not None}


async def _org_create(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.create(args.slug, _profile_changes(args), actor=_actor())
    _out(f"Created organisation {org.slug} ({org.name}).")
    _out(f"Next: cspbot org link-tenant {org.slug} TENANT_ID, then cspbot member add {org.slug} EMAIL --role admin")


async def _org_list(args: argparse.Namespace, services: Services) -> None:
    organisations = await services.organisations.list()
    if args.json:
        _out(_json([org.as_dict() for org in organisations]))
        return
    if not organisations:
        _out("No organisations yet. Register one with: cspbot org create SLUG --name NAME")
        return
    rows = [("SLUG", "NAME", "TEAMS TENANT", "MEMBERS")]
    rows += [(o.slug, o.name, o.teams_tenant_id or "-", str(len(o.members))) for o in organisations]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        _out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])


async def _org_show(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.get(args.slug)
    if args.json:
        _out(_json(org.as_dict()))
        return
    for line in _render_organisation(org):
        _out(line)


async def _org_update(args: argparse.Namespace, services: Services) -> None:
    changes = _profile_changes(args)
    org = await services.organisations.update(args.slug, changes, actor=_actor())
    _out(f"Updated {org.slug}: {', '.join(sorted(changes))}.")


async def _org_link_tenant(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.link_teams_tenant(args.slug, args.tenant_id, actor=_actor())
    _out(f"Linked Teams tenant {org.teams_tenant_id} to {org.slug}.")


async def _org_approvals_channel(args: argparse.Namespace, services: Services) -> None:
    if not args.clear and not args.conversation_id:
        current, known = await services.approvals.channel_choices(args.slug)
        _out(f"Approvals channel: {current or 'none (approvers 1:1 chats only)'}")
        if known:
            _out("Channels and group chats the bot knows for this organisation:")
            for conversation_id, kind in known:
                _out(f"  {conversation_id}  ({kind})")
        else:
            _out("The bot knows no channel of this organisation yet: add it to the team and @mention it once.")
        return
    target = None if args.clear else args.conversation_id
    await services.approvals.set_channel(args.slug, target, actor=_actor())
    if target is None:
        _out(f"Approval cards of {args.slug.strip().lower()} go to its approvers' 1:1 chats only.")
    else:
        _out(f"Approval cards of {args.slug.strip().lower()} are also posted in {target}.")


async def _org_warnings(args: argparse.Namespace, services: Services) -> None:
    from services.warnings.rules import KIND_TITLES, Kind
    from services.warnings.settings import settings_record

    org = await services.organisations.get(args.slug)
    store = services.warnings.settings
    changes = {
        "leads": args.lead,
        "seat_window_hours": args.seat_window_hours,
        "idle_days": args.idle_days,
        "excluded": args.exclude,
        "quiet": args.quiet,
        "timezone": args.timezone,
    }
    changing = args.on or args.off or any(value is not None for value in changes.values())
    if args.channel is not None:
        await store.check_channel(org.id, args.channel)  # a bad channel changes nothing
    if changing:
        settings = await store.change(org.id, actor=_actor(), enable=args.on, disable=args.off, **changes)
    else:
        settings = await store.get(org.id)
    if args.channel is not None:
        await store.set_channel(org.id, args.channel, actor=_actor())
    verb = "Changed" if changing or args.channel is not None else "Warnings of"
    record = {**settings_record(settings), "channel": await store.channel(org.id)}
    if args.json:
        _out(_json(record))
        return
    quiet = record["quiet_hours"] or "none"
    _out(f"{verb} {org.slug}:")
    for kind in Kind:
        _out(f"  {KIND_TITLES[kind]:<20} {'on' if kind in settings.enabled else 'off'}")
    _out(f"  renewal lead times   {', '.join(f'{d} days' for d in settings.renewal_lead_days)} before")
    _out(f"  seat window          {settings.seat_window_hours} hours before it closes")
    _out(f"  idle after           {settings.idle_days} days")
    _out(f"  left out of idle     {', '.join(record['excluded_skus']) or 'nothing'}")
    _out(f"  quiet hours          {quiet} ({settings.timezone})")
    _out(f"  also posted in       {record['channel'] or 'no channel (admins 1:1 chats only)'}")


async def _org_policy(args: argparse.Namespace, services: Services) -> None:
    changes: dict[str, Any] = {}
    for flag in ("monthly_threshold", "annual_limit"):
        value = getattr(args, flag)
        if value is not None:
            changes[flag] = "" if value.strip().lower() in ("none", "off", "") else value
    if args.commitments is not None:
        changes["commitments_need_approval"] = args.commitments
    if args.currency is not None:
        changes["currency"] = args.currency
    slug = args.slug.strip().lower()
    if changes:
        policy = await services.spending.set(slug, actor=_actor(), **changes)
    else:
        policy = await services.spending.get((await services.organisations.get(slug)).id)
    _out(f"Spending policy of {slug} ({policy.currency}):")
    for line in policy.lines():
        _out(f"  {line}")


async def _member_add(args: argparse.Namespace, services: Services) -> None:
    member = await services.organisations.add_member(
        args.slug, args.email, args.roles, actor=_actor(), display_name=args.display_name
    )
    _out(f"Added {member.email} to {args.slug.strip().lower()} with roles: {_roles(member)}.")


async def _member_remove(args: argparse.Namespace, services: Services) -> None:
    await services.organisations.remove_member(args.slug, args.email, actor=_actor())
    _out(f"Removed {args.email.strip().lower()} from {args.slug.strip().lower()}.")


async def _member_language(args: argparse.Namespace, services: Services) -> None:
    member = await services.organisations.set_language(args.slug, args.email, args.language, actor=_actor())
    shown = member.language or f"auto (follows Teams: {member.teams_locale or 'not seen yet'})"
    _out(f"{member.email} in {args.slug.strip().lower()} now reads in: {shown}.")


async def _member_roles(args: argparse.Namespace, services: Services) -> None:
    member = await services.organisations.set_roles(
        args.slug, args.email, add=args.add, remove=args.remove, actor=_actor()
    )
    _out(f"{member.email} in {args.slug.strip().lower()} now has roles: {_roles(member)}.")


async def _organisation_slugs(services: Services) -> dict[int, str]:
    return {org.id: org.slug for org in await services.organisations.list()}


async def _alerts_list(args: argparse.Namespace, services: Services) -> None:
    alerts = await services.alerts.list(include_acknowledged=args.all)
    slugs = await _organisation_slugs(services) if any(a.organisation_id is not None for a in alerts) else {}
    if args.json:
        _out(_json([_alert_dict(alert, slugs) for alert in alerts]))
        return
    if not alerts:
        _out("No alerts." if args.all else "No open alerts.")
        return
    for alert in alerts:
        _out(_alert_line(alert, slugs))


async def _alerts_ack(args: argparse.Namespace, services: Services) -> None:
    alert = await services.alerts.acknowledge(args.alert_id, actor=_actor())
    _out(f"Acknowledged alert #{alert.id} ({alert.code}).")


async def _tenant_show(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.get(args.slug)
    view = await services.tenants.service_of(org.id)
    if view is None:
        _out(f"{org.slug} has no Microsoft 365 tenant yet (the admin types 'add tenant' in Teams).")
        return
    rows = {
        "status": view.status,
        "origin": view.origin,
        "domain": view.domain,
        "customer_id": view.customer_id,
        "by": view.requested_by,
        "at": (view.completed_at or view.requested_at).isoformat(),
        "admin_user": view.admin_user,
        "credentials_email": view.credentials_status,
        "mail_to": view.mail_to,
        "mca": f"{view.mca_name} <{view.mca_email}> {view.mca_accepted_at.isoformat()}"
        if view.mca_accepted_at
        else "not recorded",
    }
    if args.json:
        _out(_json(rows))
        return
    for key, value in rows.items():
        _out(f"{key:18} {value if value not in (None, '') else '-'}")


async def _tenant_resend(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.get(args.slug)
    view = await services.tenants.resend_credentials(org.id, actor=_actor())
    _out(f"Sent the sign-in details for {view.domain} to {view.mail_to}.")


async def _mail_list(args: argparse.Namespace, services: Services) -> None:
    messages = await services.mailer.messages(status=args.status, limit=args.limit)
    if args.json:
        _out(_json([asdict(message) for message in messages]))
        return
    if not messages:
        _out("No e-mails.")
        return
    for m in messages:
        error = f" last error {m.last_error}" if m.last_error and m.status != "sent" else ""
        _out(
            f"#{m.id} {m.status:6} {m.created_at.isoformat(timespec='seconds')} to {m.to} '{m.subject}' "
            f"tries {m.attempts}{error}"
        )


async def _mail_retry(args: argparse.Namespace, services: Services) -> None:
    receipt = await services.mailer.retry(args.message_id)
    if receipt.delivered:
        _out(f"E-mail #{args.message_id} delivered.")
    else:
        _out(f"E-mail #{args.message_id} could not be delivered yet; it stays queued and is retried.")


async def _directory_import(args: argparse.Namespace, services: Services) -> None:
    try:
        text = args.csv.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {args.csv}: {type(error).__name__}") from None
    result = await services.directory.load_csv(args.slug.strip().lower(), text, actor=_actor())
    for problem in result.errors:
        _err(f"skipped {problem}")
    _out(f"Directory of {args.slug.strip().lower()}: {result.added} added, {result.updated} updated.")


async def _directory_list(args: argparse.Namespace, services: Services) -> None:
    slug = args.slug.strip().lower()
    people = await services.directory.entries_of(slug)
    if not people:
        _out(f"The directory of {slug} is empty.")
    for entry in people:
        tenant = "in tenant" if entry.tenant_user_id else "not in tenant"
        password = ", has directory password" if entry.has_password else ""
        _out(f"{entry.email}  {entry.display_name or '-'}  ({tenant}{password})")


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-12-01") from None


async def _billing_show(args: argparse.Namespace, services: Services) -> None:
    billing = services.billing
    calendar = await billing.calendar()
    today = await billing.today()
    current, last = calendar.cycle_of(today), calendar.last_ended(today)
    settings = [setting for setting in calendar.settings if setting.effective_from > date.min]
    if args.json:
        _out(
            _json(
                {
                    "settings": [
                        {"effective": str(s.effective_from), "cycle_day": s.day_label, "timezone": s.timezone}
                        for s in settings
                    ],
                    "current_cycle": {"start": str(current.start), "end": str(current.end)},
                    "last_ended_cycle": {"start": str(last.start), "end": str(last.end)},
                }
            )
        )
        return
    in_force = calendar.setting_on(today)
    _out(f"Cycle ends on day {in_force.day_label} of each month; event days in {in_force.timezone}.")
    if not settings:
        _out("(the default: calendar months in UTC; change it with `cspbot billing set-cycle`)")
    for setting in settings:
        planned = " (planned)" if setting.effective_from > today else ""
        _out(f"  {billing.describe(setting)}{planned}")
    _out(f"Current cycle: {current.start} to {current.end} (report dated {current.report_date}).")
    _out(f"Last ended cycle: {last.start} to {last.end}.")


async def _billing_set_cycle(args: argparse.Namespace, services: Services) -> None:
    setting = await services.billing.set_cycle(
        day=args.day, timezone=args.timezone, effective=args.effective, actor=_actor()
    )
    _out(f"Billing cycle {services.billing.describe(setting)}.")


def _secrets_key(args: argparse.Namespace, settings: Settings) -> None:
    from services.sealed_secrets import generate_key

    _out(generate_key())
    _err(
        "Set it as SECRETS_KEY on every replica. To rotate, put the new key first and keep the old one after "
        "a comma until nothing sealed with it waits: no queued or failed e-mail in 'cspbot mail list', no "
        "pending credentials e-mail in 'cspbot tenant show'."
    )


def _package(args: argparse.Namespace, settings: Settings) -> None:
    from manifest.build import build_app_package

    app_id = (args.app_id if args.app_id is not None else settings.microsoft_app_id).strip()
    if not app_id:
        raise CliError(
            "no app id: pass --app-id GUID or set MICROSOFT_APP_ID (the bot's Microsoft App ID from its "
            "Entra app registration)."
        )
    try:
        path = build_app_package(app_id, args.out, version=args.version, bot_domain=args.bot_domain)
    except ValueError as error:  # the builder's input checks (app id, version, domain)
        raise CliError(str(error)) from None
    except OSError as error:
        raise CliError(f"cannot write {args.out}: {error.strerror or error}") from None
    _out(f"Wrote {path} (app id {app_id}, version {args.version}). Upload it in Teams (Apps > Manage your apps).")


# ---- running ----------------------------------------------------------------------------------


def _database_url(settings: Settings) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    url = settings.database_url
    try:
        make_url(url)
    except (ArgumentError, ValueError):
        # Never echo the URL: it may carry a password.
        raise CliError(
            "DATABASE_URL is not a valid database URL (e.g. sqlite+aiosqlite:///var/cspbot.sqlite3 or "
            "postgresql+asyncpg://user:password@host/db)."
        ) from None
    return url


def _database_detail(error: Exception, url: str) -> str:
    """The first line of a driver error, password removed (messages may quote a connection string)."""
    from sqlalchemy.engine import make_url

    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    password = make_url(url).password
    return text.replace(password, "***") if password else text


async def _run_with_database(handler: Handler, args: argparse.Namespace, settings: Settings) -> None:
    """Open the database, bring its schema up to date (a fresh database just works), run one command."""
    from sqlalchemy.exc import SQLAlchemyError

    from services.container import build_services
    from services.db import create_engine
    from services.migrate import upgrade_database
    from startup.partner_center import open_partner_center

    url = _database_url(settings)
    try:
        engine = create_engine(url)
    except (SQLAlchemyError, ImportError, OSError) as error:  # no (async) driver, unwritable SQLite folder
        raise CliError(f"cannot open the database (check DATABASE_URL): {_database_detail(error, url)}") from None
    try:
        try:
            await upgrade_database(engine)
        except (SQLAlchemyError, OSError) as error:
            raise CliError(f"cannot open the database (check DATABASE_URL): {_database_detail(error, url)}") from None
        async with open_partner_center(settings) as partner_center:
            services = build_services(engine, settings, partner_center.client, partner_center.clock)
            try:
                await handler(args, services)
            except SQLAlchemyError as error:  # e.g. PostgreSQL refusing a value longer than its column
                raise CliError(f"the database refused the command: {_database_detail(error, url)}") from None
    finally:
        await engine.dispose()


def _run(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from services.settings import Settings, describe_invalid_settings

    try:
        settings = Settings()
    except ValidationError as error:
        raise CliError(f"invalid configuration: {describe_invalid_settings(error)}") from None
    sync_handler: Callable[[argparse.Namespace, Settings], None] | None = getattr(args, "sync_handler", None)
    if sync_handler is not None:
        # Packaging touches no database: it must work on a build machine without one.
        sync_handler(args, settings)
        return
    import asyncio

    asyncio.run(_run_with_database(args.handler, args, settings))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (0 ok, 1 failed, 2 usage) instead of exiting."""
    try:
        args = _parse(argv)
    except SystemExit as exit_:  # argparse: --help (0) or a usage error (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    from services.sealed_secrets import SecretsKeyError
    from services.settings import SettingsError

    # main() may run inside another program (tests): the logging set-up is given back after.
    try:
        with logging_configured("WARNING", "auto"), correlation_scope():
            _run(args)
    except (DomainError, CliError, SettingsError, SecretsKeyError) as error:
        _err(f"error: {getattr(error, 'message', None) or error}")
        return 1
    except KeyboardInterrupt:
        _err("error: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
