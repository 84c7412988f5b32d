"""Generated passwords (for new tenant users and directory accounts) and the directory's password hash.

Passwords come from `secrets` and meet Microsoft's complexity rule (upper, lower, digit, symbol).
Directory passwords are stored only as a scrypt hash (RFC 7914, OWASP's recommended parameters:
N=2^17, r=8, p=1, 16-byte salt, 32-byte key), in a self-describing string so the parameters can
be raised later without losing existing hashes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import string

from pydantic import SecretStr

_SYMBOLS = "!#$%&*+-=?@^_"
_ALPHABET = string.ascii_letters + string.digits + _SYMBOLS
# Characters easily mistaken for one another when copied from an e-mail are left out.
_AMBIGUOUS = set("lI1O0")
_CLASSES = (string.ascii_uppercase, string.ascii_lowercase, string.digits, _SYMBOLS)

SCRYPT_N = 2**17
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_PREFIX = "scrypt"


def generate_password(length: int = 16) -> SecretStr:
    """A random password with at least one character of each class."""
    if length < 12:
        raise ValueError("generated passwords are at least 12 characters long")
    alphabet = [c for c in _ALPHABET if c not in _AMBIGUOUS]
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(length))
        if all(any(c in group for c in candidate) for group in _CLASSES):
            return SecretStr(candidate)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=_KEY_BYTES)


def hash_password_sync(password: SecretStr) -> str:
    salt = secrets.token_bytes(_SALT_BYTES)
    key = _scrypt(password.get_secret_value(), salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    encode = base64.b64encode
    return f"{_PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${encode(salt).decode()}${encode(key).decode()}"


def verify_password_sync(password: SecretStr, stored: str) -> bool:
    try:
        prefix, n, r, p, salt, key = stored.split("$")
        if prefix != _PREFIX:
            return False
        expected = base64.b64decode(key)
        actual = _scrypt(password.get_secret_value(), base64.b64decode(salt), int(n), int(r), int(p))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


async def hash_password(password: SecretStr) -> str:
    """The hash, computed off the event loop (scrypt deliberately takes ~0.1-0.3 s and 128 MiB)."""
    return await asyncio.to_thread(hash_password_sync, password)


async def verify_password(password: SecretStr, stored: str) -> bool:
    return await asyncio.to_thread(verify_password_sync, password, stored)
