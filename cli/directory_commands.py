"""`cspbot directory import|list`: an organisation's own user directory."""

from __future__ import annotations

import argparse
import pathlib
from typing import TYPE_CHECKING

from cli.errors import CliError
from cli.output import actor, command_parser, err, out

if TYPE_CHECKING:
    from cli.output import Commands
    from services.container import Services

DIRECTORY_HELP = "an organisation's own user directory"


def add_directory(commands: Commands) -> None:
    from services.users.directory import CSV_COLUMNS as DIRECTORY_CSV_COLUMNS

    directory = command_parser(commands, "directory", DIRECTORY_HELP).add_subparsers(
        dest="action", required=True, metavar="{import,list}"
    )
    load = directory.add_parser("import", help="add or update directory people from a CSV file (by e-mail)")
    load.add_argument("slug", metavar="ORG")
    load.add_argument("csv", metavar="CSV", type=pathlib.Path, help="header: " + ",".join(DIRECTORY_CSV_COLUMNS))
    load.set_defaults(handler=_directory_import)
    people = directory.add_parser("list", help="the people in an organisation's directory")
    people.add_argument("slug", metavar="ORG")
    people.set_defaults(handler=_directory_list)


async def _directory_import(args: argparse.Namespace, services: Services) -> None:
    try:
        text = args.csv.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise CliError(f"cannot read {args.csv}: {type(error).__name__}") from None
    result = await services.directory.load_csv(args.slug.strip().lower(), text, actor=actor())
    for problem in result.errors:
        err(f"skipped {problem}")
    out(f"Directory of {args.slug.strip().lower()}: {result.added} added, {result.updated} updated.")


async def _directory_list(args: argparse.Namespace, services: Services) -> None:
    slug = args.slug.strip().lower()
    people = await services.directory.entries_of(slug)
    if not people:
        out(f"The directory of {slug} is empty.")
    for entry in people:
        tenant = "in tenant" if entry.tenant_user_id else "not in tenant"
        password = ", has directory password" if entry.has_password else ""
        out(f"{entry.email}  {entry.display_name or '-'}  ({tenant}{password})")
