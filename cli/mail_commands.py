"""`cspbot mail list|retry`: the outgoing e-mail outbox."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import TYPE_CHECKING

from cli.output import add_json_flag, command_parser, out, to_json

if TYPE_CHECKING:
    from cli.output import Commands
    from services.container import Services

MAIL_HELP = "the outgoing e-mail outbox"


def add_mail(commands: Commands) -> None:
    mail = command_parser(commands, "mail", MAIL_HELP).add_subparsers(
        dest="action", required=True, metavar="{list,retry}"
    )
    mail_list = mail.add_parser("list", help="the newest e-mails and their status (never their secrets)")
    mail_list.add_argument("--status", choices=("queued", "sent", "failed"), help="only this status")
    mail_list.add_argument("--limit", type=int, default=50)
    add_json_flag(mail_list)
    mail_list.set_defaults(handler=_mail_list)
    mail_retry = mail.add_parser("retry", help="try a queued or failed e-mail again now")
    mail_retry.add_argument("message_id", metavar="ID", type=int)
    mail_retry.set_defaults(handler=_mail_retry)


async def _mail_list(args: argparse.Namespace, services: Services) -> None:
    messages = await services.mailer.messages(status=args.status, limit=args.limit)
    if args.json:
        out(to_json([asdict(message) for message in messages]))
        return
    if not messages:
        out("No e-mails.")
        return
    for m in messages:
        error = f" last error {m.last_error}" if m.last_error and m.status != "sent" else ""
        out(
            f"#{m.id} {m.status:6} {m.created_at.isoformat(timespec='seconds')} to {m.to} '{m.subject}' "
            f"tries {m.attempts}{error}"
        )


async def _mail_retry(args: argparse.Namespace, services: Services) -> None:
    receipt = await services.mailer.retry(args.message_id)
    if receipt.delivered:
        out(f"E-mail #{args.message_id} delivered.")
    else:
        out(f"E-mail #{args.message_id} could not be delivered yet; it stays queued and is retried.")
