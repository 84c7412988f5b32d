"""`cspbot org …` and `cspbot member …`: customer organisations, their people and roles.

    cspbot org create|list|show|update|link-tenant|approvals-channel|warnings|policy ...
    cspbot member add|remove|roles|language ...

Shares the profile flags and member lines between the two groups.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from cli.output import actor, add_json_flag, command_parser, flag, out, to_json
from services.roles import Role

if TYPE_CHECKING:
    from cli.output import Commands
    from services.container import Services
    from services.organisations import MemberView, OrganisationView

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
ORG_HELP = "customer organisations"
MEMBER_HELP = "people of an organisation and their roles"


def _add_profile_flags(parser: argparse.ArgumentParser, *, name_required: bool) -> None:
    from services.organisations import PROFILE_FIELDS

    group = parser.add_argument_group("organisation profile")
    for field in PROFILE_FIELDS:
        help_text = PROFILE_HELP.get(field, field.replace("_", " "))
        if field == "allow_self_approval":
            group.add_argument(
                flag(field), dest=field, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
        elif field == "name":
            group.add_argument(flag(field), dest=field, required=name_required, metavar="NAME", help=help_text)
        else:
            group.add_argument(flag(field), dest=field, metavar=field.upper(), help=help_text)


def add_org(commands: Commands) -> None:
    org = command_parser(commands, "org", ORG_HELP).add_subparsers(
        dest="action", required=True, metavar="{create,list,show,update,link-tenant,approvals-channel,warnings,policy}"
    )
    create = org.add_parser("create", help="register a customer organisation")
    create.add_argument("slug", metavar="SLUG", help="short name: 2-63 lower-case letters, digits, dashes")
    _add_profile_flags(create, name_required=True)
    create.set_defaults(handler=_org_create)

    listing = org.add_parser("list", help="list the organisations")
    add_json_flag(listing)
    listing.set_defaults(handler=_org_list)

    show = org.add_parser("show", help="an organisation's profile, tenant and members")
    show.add_argument("slug", metavar="SLUG")
    add_json_flag(show)
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
    channel.set_defaults(handler=_org_approvals_channel, usage_error=channel.error, check_usage=_check_channel)

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
    add_json_flag(warnings)
    warnings.set_defaults(handler=_org_warnings)


def add_member(commands: Commands) -> None:
    member = command_parser(commands, "member", MEMBER_HELP).add_subparsers(
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
    roles.set_defaults(handler=_member_roles, usage_error=roles.error, check_usage=_check_roles)

    language = member.add_parser("language", help="the language a member reads (nb, de-DE, ...; auto follows Teams)")
    language.add_argument("slug", metavar="SLUG")
    language.add_argument("email", metavar="EMAIL")
    language.add_argument("language", metavar="LANGUAGE", help="a language the bot speaks, or auto")
    language.set_defaults(handler=_member_language)


def _check_channel(args: argparse.Namespace) -> None:
    if args.clear and args.conversation_id:
        args.usage_error("give either CONVERSATION_ID or --clear")


def _check_roles(args: argparse.Namespace) -> None:
    if not (args.add or args.remove):
        args.usage_error("give --add ROLE and/or --remove ROLE")


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


def _profile_changes(args: argparse.Namespace) -> dict[str, Any]:
    """Only the flags the operator gave: absent flags must not blank stored values."""
    from services.organisations import PROFILE_FIELDS

    return {field: getattr(args, field) for field in PROFILE_FIELDS if getattr(args, field) is not None}


async def _org_create(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.create(args.slug, _profile_changes(args), actor=actor())
    out(f"Created organisation {org.slug} ({org.name}).")
    out(f"Next: cspbot org link-tenant {org.slug} TENANT_ID, then cspbot member add {org.slug} EMAIL --role admin")


async def _org_list(args: argparse.Namespace, services: Services) -> None:
    organisations = await services.organisations.list()
    if args.json:
        out(to_json([org.as_dict() for org in organisations]))
        return
    if not organisations:
        out("No organisations yet. Register one with: cspbot org create SLUG --name NAME")
        return
    rows = [("SLUG", "NAME", "TEAMS TENANT", "MEMBERS")]
    rows += [(o.slug, o.name, o.teams_tenant_id or "-", str(len(o.members))) for o in organisations]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        out("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])


async def _org_show(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.get(args.slug)
    if args.json:
        out(to_json(org.as_dict()))
        return
    for line in _render_organisation(org):
        out(line)


async def _org_update(args: argparse.Namespace, services: Services) -> None:
    changes = _profile_changes(args)
    org = await services.organisations.update(args.slug, changes, actor=actor())
    out(f"Updated {org.slug}: {', '.join(sorted(changes))}.")


async def _org_link_tenant(args: argparse.Namespace, services: Services) -> None:
    org = await services.organisations.link_teams_tenant(args.slug, args.tenant_id, actor=actor())
    out(f"Linked Teams tenant {org.teams_tenant_id} to {org.slug}.")


async def _org_approvals_channel(args: argparse.Namespace, services: Services) -> None:
    if not args.clear and not args.conversation_id:
        current, known = await services.approvals.channel_choices(args.slug)
        out(f"Approvals channel: {current or 'none (approvers 1:1 chats only)'}")
        if known:
            out("Channels and group chats the bot knows for this organisation:")
            for conversation_id, kind in known:
                out(f"  {conversation_id}  ({kind})")
        else:
            out("The bot knows no channel of this organisation yet: add it to the team and @mention it once.")
        return
    target = None if args.clear else args.conversation_id
    await services.approvals.set_channel(args.slug, target, actor=actor())
    if target is None:
        out(f"Approval cards of {args.slug.strip().lower()} go to its approvers' 1:1 chats only.")
    else:
        out(f"Approval cards of {args.slug.strip().lower()} are also posted in {target}.")


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
        settings = await store.change(org.id, actor=actor(), enable=args.on, disable=args.off, **changes)
    else:
        settings = await store.get(org.id)
    if args.channel is not None:
        await store.set_channel(org.id, args.channel, actor=actor())
    verb = "Changed" if changing or args.channel is not None else "Warnings of"
    record = {**settings_record(settings), "channel": await store.channel(org.id)}
    if args.json:
        out(to_json(record))
        return
    quiet = record["quiet_hours"] or "none"
    out(f"{verb} {org.slug}:")
    for kind in Kind:
        out(f"  {KIND_TITLES[kind]:<20} {'on' if kind in settings.enabled else 'off'}")
    out(f"  renewal lead times   {', '.join(f'{d} days' for d in settings.renewal_lead_days)} before")
    out(f"  seat window          {settings.seat_window_hours} hours before it closes")
    out(f"  idle after           {settings.idle_days} days")
    out(f"  left out of idle     {', '.join(record['excluded_skus']) or 'nothing'}")
    out(f"  quiet hours          {quiet} ({settings.timezone})")
    out(f"  also posted in       {record['channel'] or 'no channel (admins 1:1 chats only)'}")


async def _org_policy(args: argparse.Namespace, services: Services) -> None:
    changes: dict[str, Any] = {}
    for name in ("monthly_threshold", "annual_limit"):
        value = getattr(args, name)
        if value is not None:
            changes[name] = "" if value.strip().lower() in ("none", "off", "") else value
    if args.commitments is not None:
        changes["commitments_need_approval"] = args.commitments
    if args.currency is not None:
        changes["currency"] = args.currency
    slug = args.slug.strip().lower()
    if changes:
        policy = await services.spending.set(slug, actor=actor(), **changes)
    else:
        policy = await services.spending.get((await services.organisations.get(slug)).id)
    out(f"Spending policy of {slug} ({policy.currency}):")
    for line in policy.lines():
        out(f"  {line}")


async def _member_add(args: argparse.Namespace, services: Services) -> None:
    member = await services.organisations.add_member(
        args.slug, args.email, args.roles, actor=actor(), display_name=args.display_name
    )
    out(f"Added {member.email} to {args.slug.strip().lower()} with roles: {_roles(member)}.")


async def _member_remove(args: argparse.Namespace, services: Services) -> None:
    await services.organisations.remove_member(args.slug, args.email, actor=actor())
    out(f"Removed {args.email.strip().lower()} from {args.slug.strip().lower()}.")


async def _member_language(args: argparse.Namespace, services: Services) -> None:
    member = await services.organisations.set_language(args.slug, args.email, args.language, actor=actor())
    shown = member.language or f"auto (follows Teams: {member.teams_locale or 'not seen yet'})"
    out(f"{member.email} in {args.slug.strip().lower()} now reads in: {shown}.")


async def _member_roles(args: argparse.Namespace, services: Services) -> None:
    member = await services.organisations.set_roles(
        args.slug, args.email, add=args.add, remove=args.remove, actor=actor()
    )
    out(f"{member.email} in {args.slug.strip().lower()} now has roles: {_roles(member)}.")
