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

This module holds the top-level parser and runs a command; each command group is a module of its own
(`cli/<group>_commands.py`), imported only when its command is given.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from cli.errors import CliError
from cli.output import err
from services.errors import DomainError
from services.logging_context import correlation_scope, logging_configured

# The rest is imported where it is used: `cspbot --help` (and a usage error) loads none of the command groups,
# services, the database or the sandbox, and a command loads only its own group (see COMMANDS).
if TYPE_CHECKING:
    from cli.output import Commands
    from services.container import Services
    from services.settings import Settings

    Handler = Callable[[argparse.Namespace, Services], Awaitable[None]]

log = logging.getLogger("cspbot.cli")

PROG = "cspbot"

# Every command: its line in `cspbot --help`, and the function (`module:name`, one module per command group) that
# adds it with its actions and flags. Only the command given is imported and built; a test checks these lines are
# the built commands' own.
COMMANDS: dict[str, tuple[str, str]] = {
    "org": ("customer organisations", "cli.org_commands:add_org"),
    "member": ("people of an organisation and their roles", "cli.org_commands:add_member"),
    "alerts": ("what needs a person", "cli.alerts_commands:add_alerts"),
    "tenant": ("an organisation's Microsoft 365 tenant", "cli.tenant_commands:add_tenant"),
    "billing": ("the reseller's billing cycle", "cli.billing_commands:add_billing"),
    "package": ("build the Teams app package (zip)", "cli.package_commands:add_package"),
    "secrets-key": (
        "print a new key for SECRETS_KEY (seals passwords waiting for their e-mail)",
        "cli.package_commands:add_secrets_key",
    ),
    "sandbox": (
        "the Partner Center sandbox: serve it alone, or move the running bot's sandbox clock and inject faults",
        "cli.sandbox_commands:add_sandbox_commands",
    ),
    "directory": ("an organisation's own user directory", "cli.directory_commands:add_directory"),
    "prices": ("the reseller's price lists", "cli.catalog_commands:add_catalog_commands"),  # adds prices and catalog
    "catalog": ("the catalog cache and its taxonomy", "cli.catalog_commands:add_catalog_commands"),
    "mail": ("the outgoing e-mail outbox", "cli.mail_commands:add_mail"),
}


def _adder(target: str) -> Callable[[Commands], None]:
    module, name = target.split(":")
    add: Callable[[Commands], None] = getattr(importlib.import_module(module), name)
    return add


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
    for name, (help_text, target) in COMMANDS.items():
        if name in commands.choices:  # added with another (`prices` and `catalog` come together)
            continue
        if command == "*" or target == chosen:
            _adder(target)(commands)
        else:
            commands.add_parser(name, help=help_text)
    return parser


def _named_command(argv: Sequence[str]) -> str | None:
    """The command the arguments name (the first that is not an option), if it is one."""
    first = next((arg for arg in argv if not arg.startswith("-")), None)
    return first if first in COMMANDS else None


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    arguments = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(_named_command(arguments)).parse_args(arguments)
    check_usage: Callable[[argparse.Namespace], None] | None = getattr(args, "check_usage", None)
    if check_usage is not None:
        check_usage(args)
    return args


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
        err(f"error: {getattr(error, 'message', None) or error}")
        return 1
    except KeyboardInterrupt:
        err("error: interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
