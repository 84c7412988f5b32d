"""`cspbot package` and `cspbot secrets-key`: the commands that need no database.

    cspbot package [--app-id GUID] [--out dist/appPackage.zip] [--version X.Y.Z] [--bot-domain HOST]
    cspbot secrets-key

Both run without the database: they must work on a build machine without one.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import TYPE_CHECKING

from cli.errors import CliError
from cli.output import command_parser, err, out

if TYPE_CHECKING:
    from cli.output import Commands
    from services.settings import Settings

DEFAULT_PACKAGE_PATH = pathlib.Path("dist") / "appPackage.zip"
PACKAGE_HELP = "build the Teams app package (zip)"
SECRETS_KEY_HELP = "print a new key for SECRETS_KEY (seals passwords waiting for their e-mail)"


def add_package(commands: Commands) -> None:
    package = command_parser(commands, "package", PACKAGE_HELP)
    package.add_argument(
        "--app-id", default=None, metavar="GUID", help="the bot's Microsoft App ID (default: MICROSOFT_APP_ID)"
    )
    package.add_argument(
        "--out", type=pathlib.Path, default=DEFAULT_PACKAGE_PATH, help=f"default: {DEFAULT_PACKAGE_PATH}"
    )
    package.add_argument("--version", default="1.0.0", help="app version MAJOR.MINOR.PATCH (default: 1.0.0)")
    package.add_argument("--bot-domain", default=None, metavar="HOST", help="host name for validDomains")
    package.set_defaults(sync_handler=_package)


def add_secrets_key(commands: Commands) -> None:
    secrets_key = command_parser(commands, "secrets-key", SECRETS_KEY_HELP)
    secrets_key.set_defaults(sync_handler=_secrets_key)


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
    out(f"Wrote {path} (app id {app_id}, version {args.version}). Upload it in Teams (Apps > Manage your apps).")


def _secrets_key(_args: argparse.Namespace, _settings: Settings) -> None:
    from services.sealed_secrets import generate_key

    out(generate_key())
    err(
        "Set it as SECRETS_KEY on every replica. To rotate, put the new key first and keep the old one after "
        "a comma until nothing sealed with it waits: no queued or failed e-mail in 'cspbot mail list', no "
        "pending credentials e-mail in 'cspbot tenant show'."
    )
