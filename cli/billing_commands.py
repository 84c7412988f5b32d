"""`cspbot billing show | set-cycle [--day 1-31|last] [--timezone ZONE] --effective YYYY-MM-DD`."""

from __future__ import annotations

import argparse
from datetime import date
from typing import TYPE_CHECKING

from cli.output import actor, add_json_flag, command_parser, out, to_json

if TYPE_CHECKING:
    from cli.output import Commands
    from services.container import Services

BILLING_HELP = "the reseller's billing cycle"


def add_billing(commands: Commands) -> None:
    billing = command_parser(commands, "billing", BILLING_HELP).add_subparsers(
        dest="action", required=True, metavar="{show,set-cycle}"
    )
    billing_show = billing.add_parser("show", help="the cycle settings in force and planned, and the current cycle")
    add_json_flag(billing_show)
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
    set_cycle.set_defaults(handler=_billing_set_cycle, usage_error=set_cycle.error, check_usage=_check_set_cycle)


def _check_set_cycle(args: argparse.Namespace) -> None:
    if args.day is None and args.timezone is None:
        args.usage_error("give --day and/or --timezone")


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
        out(
            to_json(
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
    out(f"Cycle ends on day {in_force.day_label} of each month; event days in {in_force.timezone}.")
    if not settings:
        out("(the default: calendar months in UTC; change it with `cspbot billing set-cycle`)")
    for setting in settings:
        planned = " (planned)" if setting.effective_from > today else ""
        out(f"  {billing.describe(setting)}{planned}")
    out(f"Current cycle: {current.start} to {current.end} (report dated {current.report_date}).")
    out(f"Last ended cycle: {last.start} to {last.end}.")


async def _billing_set_cycle(args: argparse.Namespace, services: Services) -> None:
    setting = await services.billing.set_cycle(
        day=args.day, timezone=args.timezone, effective=args.effective, actor=actor()
    )
    out(f"Billing cycle {services.billing.describe(setting)}.")
