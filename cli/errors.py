"""The CLI's own failure: something the operator can fix, reported as one `error:` line."""

from __future__ import annotations


class CliError(Exception):
    """A failure the operator can fix, reported as one `error:` line (like a DomainError)."""
