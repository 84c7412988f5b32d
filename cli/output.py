"""What every command group shares: writing results and errors, the audit actor, JSON output."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # The subcommands object `add_subparsers` returns; each command group adds its parsers to it.
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def out(text: str = "") -> None:
    # Resolved at call time so a replaced sys.stdout (tests, redirection) is honoured.
    sys.stdout.write(text + "\n")


def err(text: str) -> None:
    sys.stderr.write(text + "\n")


def flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def actor() -> str:
    """The audit log's `who` for CLI changes: the operator's login name."""
    try:
        login = getpass.getuser()
    except (OSError, KeyError, ImportError):  # no LOGNAME/USER and no passwd entry (some containers)
        login = "unknown"
    return f"operator:{login}"


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable JSON output")


def command_parser(commands: Commands, name: str, help_text: str) -> argparse.ArgumentParser:
    """The parser of one command; `help_text` is its line in `cspbot --help` (the same as in `cli.main.COMMANDS`,
    which lists commands without building them — a test keeps the two equal)."""
    return commands.add_parser(name, help=help_text)


def to_json(value: Any) -> str:
    def default(item: Any) -> Any:
        if isinstance(item, datetime):
            return item.isoformat()
        if isinstance(item, frozenset | set):
            return sorted(item)
        raise TypeError(f"not JSON serialisable: {type(item).__name__}")

    return json.dumps(value, indent=2, ensure_ascii=False, default=default)
