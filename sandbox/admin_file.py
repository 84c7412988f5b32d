"""Where a running bot's built-in sandbox can be driven from: its address and admin token in a file.

The bot starts its sandbox with a random token that only its own client knows; the operator's
`cspbot sandbox clock|fault` commands read this file to reach the same sandbox's `/_sandbox/`
endpoint. The file is created readable by the bot's user only (the token grants every write the
sandbox allows), replaced whole (a reader never sees half of it), and removed when the bot stops.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class SandboxAdmin:
    """A running sandbox's base URL and the bearer token it accepts."""

    url: str
    token: str = field(repr=False)


def publish_admin_file(path: Path, admin: SandboxAdmin) -> None:
    """Write `{url, token}` to `path` (mode 0600), replacing any earlier file in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"url": admin.url, "token": admin.token}, handle)
            handle.write("\n")
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_admin_file(path: Path) -> SandboxAdmin:
    """The sandbox named in `path`. Raises FileNotFoundError when there is none, ValueError when the
    file is not one this module wrote."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        raise ValueError(f"{path} is not JSON") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(key), str) and data[key] for key in ("url", "token")):
        raise ValueError(f"{path} does not hold a sandbox url and token")
    return SandboxAdmin(data["url"], data["token"])


def withdraw_admin_file(path: Path, admin: SandboxAdmin) -> None:
    """Remove `path` if it still names this sandbox: a sandbox started later (another bot on the same
    database) has replaced it and keeps its own."""
    try:
        if read_admin_file(path) == admin:
            path.unlink()
    except (OSError, ValueError):
        pass
