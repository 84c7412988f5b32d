"""`cspbot alerts list|ack`: what needs a person."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from cli.output import actor, add_json_flag, command_parser, out, to_json

if TYPE_CHECKING:
    from cli.output import Commands
    from services.alerts import AlertView
    from services.container import Services

ALERTS_HELP = "what needs a person"


def add_alerts(commands: Commands) -> None:
    alerts = command_parser(commands, "alerts", ALERTS_HELP).add_subparsers(
        dest="action", required=True, metavar="{list,ack}"
    )
    alert_list = alerts.add_parser("list", help="open alerts")
    alert_list.add_argument("--all", action="store_true", help="include acknowledged alerts")
    add_json_flag(alert_list)
    alert_list.set_defaults(handler=_alerts_list)

    ack = alerts.add_parser("ack", help="acknowledge an alert")
    ack.add_argument("alert_id", metavar="ID", type=int)
    ack.set_defaults(handler=_alerts_ack)


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


async def _organisation_slugs(services: Services) -> dict[int, str]:
    return {org.id: org.slug for org in await services.organisations.list()}


async def _alerts_list(args: argparse.Namespace, services: Services) -> None:
    alerts = await services.alerts.list(include_acknowledged=args.all)
    slugs = await _organisation_slugs(services) if any(a.organisation_id is not None for a in alerts) else {}
    if args.json:
        out(to_json([_alert_dict(alert, slugs) for alert in alerts]))
        return
    if not alerts:
        out("No alerts." if args.all else "No open alerts.")
        return
    for alert in alerts:
        out(_alert_line(alert, slugs))


async def _alerts_ack(args: argparse.Namespace, services: Services) -> None:
    alert = await services.alerts.acknowledge(args.alert_id, actor=actor())
    out(f"Acknowledged alert #{alert.id} ({alert.code}).")
