"""Domain errors: a machine code plus a message that is safe to show to the user as it is."""

from __future__ import annotations


class DomainError(Exception):
    """A failure the user can understand and act on. `message` never holds secrets or internals."""

    code = "domain_error"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.field = field


class NotFound(DomainError):
    code = "not_found"


class InvalidInput(DomainError):
    code = "invalid_input"


class Conflict(DomainError):
    code = "conflict"


class NotRegistered(DomainError):
    """The caller is not a member of any organisation the reseller registered."""

    code = "not_registered"


class PermissionDenied(DomainError):
    code = "permission_denied"
