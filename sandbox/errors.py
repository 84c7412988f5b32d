"""Partner Center's error body, raised by the sandbox's rules and rendered at the HTTP edge.

Microsoft's errors are `{code, description, data, source}` (error-codes.md); clients branch on the
numeric `code`, so every rule the sandbox enforces raises the code Microsoft documents for it.
"""

from __future__ import annotations

from typing import Any

SOURCE = "PartnerFD"

# Codes the sandbox uses, named for readability. Values are Microsoft's (error-codes.md and the
# per-operation pages); where Microsoft documents none, the comment says so.
NOT_FOUND = 1000
SUBSCRIPTION_SUSPENDED_QUANTITY = 2001
QUANTITY_OUT_OF_RANGE = 2002
SUBSCRIPTION_DELETED = 2011
ETAG_INVALID = 2055
INVALID_PROPERTY = 27002  # "A property has invalid data." — seen for customer-creation field errors
PARENT_NOT_ACTIVE = 27009
AGREEMENT_MISSING = 13605
ORDER_NOT_FOUND = 20000
SUBSCRIPTION_NOT_FOUND = 20003
USER_NOT_FOUND = 60002
TENANT_NOT_FOUND = 60003
LICENSES_EXHAUSTED = 60012
REGISTRATION_NUMBER_UNSUPPORTED = 600002
REGISTRATION_NUMBER_MISSING = 600049
REGISTRATION_NUMBER_INVALID = 600050
PHONE_NUMBER_MISSING = 600051
PRODUCT_NOT_FOUND = 400013
TOKEN_MISSING = 800001
INVALID_INPUT = 800002
UNEXPECTED = 800003
CART_NOT_FOUND = 800008
CART_ITEM_ERROR = 800009
STATUS_CHANGE_NOT_ALLOWED = 800040
CART_ALREADY_SUBMITTED = 800065
SEAT_LIMIT_EXCEEDED = 800088
CANNOT_DECREASE = 800090
CANNOT_UPDATE_QUANTITY = 800095
ADDON_NOT_RELATED = 800029
CANCELLATION_WINDOW_PASSED = 900117
# Microsoft documents no code for a change inside the 24 hours before a renewal; this one is the sandbox's.
RENEWAL_LOCKED = 900190
ACCESS_DENIED = 400


class SandboxError(Exception):
    """A Partner Center error: HTTP status plus Microsoft's error body."""

    def __init__(self, status: int, code: int, description: str, data: list[str] | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description[:1024]
        self.data = data or []

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "description": self.description, "data": self.data, "source": SOURCE}


def invalid_property(name: str, detail: str, *, status: int = 400) -> SandboxError:
    """Microsoft's shape for a bad field: code 27002 with `property_name` / `details` data lines."""
    return SandboxError(
        status, INVALID_PROPERTY, "A property has invalid data.", [f"property_name:  {name}", f"details:  {detail}"]
    )


def invalid_input(detail: str) -> SandboxError:
    return SandboxError(400, INVALID_INPUT, f"Invalid request input: {detail}")


def not_found(code: int, description: str) -> SandboxError:
    return SandboxError(404, code, description)
