"""Secrets kept in the database until they are used — a generated password waiting for the e-mail that
carries it — are stored sealed, never as plain text.

Sealing is Fernet (AES-128-CBC with an HMAC-SHA256 tag, from `cryptography`). The key comes from
`SECRETS_KEY`, or else from a key file that this process creates on first use (`SECRETS_KEY_FILE`;
by default beside the SQLite database). Several comma-separated keys may be given to rotate: the first
seals, all of them open. A value stored before sealing existed (no `sealed:` prefix) still opens as it
is, so no message waiting in the outbox is lost by an upgrade.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from services.errors import DomainError

PREFIX = "sealed:v1:"


class SecretUnreadable(DomainError):
    """A sealed secret that none of the configured keys opens (sealed under another key)."""

    code = "secret_unreadable"


class SecretsKeyError(ValueError):
    """`SECRETS_KEY` or the key file does not hold a usable key (the message never repeats the key)."""


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def _fernet(key: str, where: str) -> Fernet:
    try:
        return Fernet(key.strip().encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise SecretsKeyError(
            f"{where} is not a Fernet key (32 bytes, URL-safe base64); make one with 'cspbot secrets-key'."
        ) from None


class SecretBox:
    """Seals and opens the secrets this app keeps in its database."""

    def __init__(self, keys: list[str], *, where: str = "SECRETS_KEY") -> None:
        if not keys:
            raise SecretsKeyError(f"{where} holds no key.")
        self._fernet = MultiFernet([_fernet(key, where) for key in keys])

    @classmethod
    def from_keys(cls, keys: str) -> SecretBox:
        """The box for `SECRETS_KEY`'s text: comma-separated keys, the first seals."""
        return cls(_split(keys))

    def seal(self, plain: str) -> str:
        return PREFIX + self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored  # stored before sealing existed
        try:
            return self._fernet.decrypt(stored[len(PREFIX) :].encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise SecretUnreadable(
                "A stored secret was sealed with another key than SECRETS_KEY holds; it cannot be read here."
            ) from None


def _split(keys: str) -> list[str]:
    return [key.strip() for key in keys.split(",") if key.strip()]


def _read_or_create_key_file(path: Path) -> list[str]:
    """The keys in `path`; a new random key written there first (mode 0600) if it does not exist."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            # Written whole under another name, then linked into place: processes starting together (replicas,
            # workers) never read a file still being written, and the first link wins.
            descriptor, written = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
            try:
                with os.fdopen(descriptor, "w", encoding="ascii") as file:
                    file.write(generate_key() + "\n")
                with contextlib.suppress(FileExistsError):
                    os.link(written, path)
            finally:
                os.unlink(written)
        return _split(path.read_text(encoding="ascii").replace("\n", ","))
    except (OSError, UnicodeDecodeError) as error:
        raise SecretsKeyError(f"The key file {path} cannot be read or made ({type(error).__name__}).") from None


def open_secret_box(keys: str, key_file: Path) -> SecretBox:
    """The box for `SECRETS_KEY` (comma-separated keys), or else for the key file (created if missing)."""
    if _split(keys):
        return SecretBox.from_keys(keys)
    return SecretBox(_read_or_create_key_file(key_file), where=f"The key file {key_file}")
