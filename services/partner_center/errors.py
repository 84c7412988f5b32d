"""Partner Center failures as domain errors: Microsoft's code kept, a message a customer admin can act on.

`code` is Microsoft's numeric error code as a string when Microsoft gave one we know (e.g. "800090"),
otherwise a short symbolic code ("throttled", "not_found", "etag_mismatch", "auth_failed", ...).
`message` is plain words for the person in Teams; Microsoft's own `description` is kept separately
for operators and is never put in `message` (it is technical and sometimes names internal ids).
Nothing here ever holds a token, a password or a raw response body.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from services.errors import Conflict, DomainError, InvalidInput, NotFound
from services.i18n import N_, _


class PartnerCenterError(DomainError):
    """Microsoft refused or could not complete a request."""

    code = "partner_center_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        field: str | None = None,
        http_status: int | None = None,
        description: str | None = None,
        request_id: str | None = None,
        correlation_id: str | None = None,
    ) -> None:
        super().__init__(message, code=code, field=field)
        self.http_status = http_status
        # Microsoft's own words, for operator logs and support tickets - never shown to users.
        self.description = description
        # The ids Microsoft support asks for when a call misbehaves.
        self.request_id = request_id
        self.correlation_id = correlation_id


class PartnerCenterAuthError(PartnerCenterError):
    """Our Microsoft credentials were refused. Not the user's fault: the app raises an operator alert."""

    code = "auth_failed"


class PartnerCenterThrottled(PartnerCenterError):
    """Microsoft asked us to slow down for longer than we are willing to wait inside one call."""

    code = "throttled"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PartnerCenterUnavailable(PartnerCenterError):
    """Microsoft kept failing (5xx, timeouts, dropped connections) through every retry."""

    code = "unavailable"


class PartnerCenterNotFound(PartnerCenterError, NotFound):
    code = "not_found"


class PartnerCenterConflict(PartnerCenterError, Conflict):
    """Someone else changed the resource (e-tag mismatch) or the operation is already in progress."""

    code = "conflict"


class PartnerCenterInvalidInput(PartnerCenterError, InvalidInput):
    """Microsoft rejected a value the user typed; `field` names it so the card can show it there."""

    code = "invalid_input"


class PartnerCenterRuleViolation(PartnerCenterError):
    """A Microsoft commerce rule forbids this (window passed, suspended, no licences left...)."""

    code = "rule_violation"


THROTTLED_MESSAGE = N_("Microsoft is handling too many requests right now. Please try again in a minute.")
UNAVAILABLE_MESSAGE = N_("Microsoft's service is not responding right now. Please try again in a few minutes.")
AUTH_MESSAGE = N_(
    "Microsoft credentials expired or lack permission, so this could not be done. "
    "The reseller has to renew them; please try again later."
)
NOT_FOUND_MESSAGE = N_("Microsoft could not find that item. It may have been removed or renamed.")
CONFLICT_MESSAGE = N_("Someone else changed this at the same time. Reload it and try again.")
ETAG_MESSAGE = N_("This subscription was changed elsewhere a moment ago. Reload it and try again.")
BAD_RESPONSE_MESSAGE = N_("Microsoft sent an answer this app could not read. Please try again later.")

_REG_NUMBER = "organizationRegistrationNumber"

# Microsoft error code -> (error class, user-safe message, field the message is about).
ERROR_TABLE: Mapping[str, tuple[type[PartnerCenterError], str, str | None]] = MappingProxyType(
    {
        "800090": (
            PartnerCenterRuleViolation,
            N_(
                "Microsoft does not allow lowering the number of licences now: seats can only be removed in "
                "the first days after they were added. You can lower the quantity for the next renewal instead."
            ),
            "quantity",
        ),
        "900117": (
            PartnerCenterRuleViolation,
            N_(
                "The cancellation window for this subscription has passed, so Microsoft will not cancel it. "
                "You can turn off auto-renew so that it ends at the end of its term."
            ),
            None,
        ),
        "2001": (
            PartnerCenterRuleViolation,
            N_("This subscription is suspended, so its number of licences cannot change. Reactivate it first."),
            "quantity",
        ),
        "800091": (
            PartnerCenterRuleViolation,
            N_("This subscription is suspended, so it cannot be changed. Reactivate it first."),
            None,
        ),
        "2002": (
            PartnerCenterInvalidInput,
            N_("That number of licences is outside the minimum and maximum Microsoft allows for this product."),
            "quantity",
        ),
        "800088": (
            PartnerCenterInvalidInput,
            N_("That many licences would go over Microsoft's limit for this product for this customer."),
            "quantity",
        ),
        "2011": (
            PartnerCenterRuleViolation,
            N_("This subscription has been cancelled and can no longer be changed."),
            None,
        ),
        "800095": (
            PartnerCenterRuleViolation,
            N_(
                "Microsoft does not allow this number of licences for this subscription; for example, it cannot "
                "go below the licences already assigned to users. Remove licences from users first, or choose more."
            ),
            "quantity",
        ),
        "60012": (
            PartnerCenterRuleViolation,
            N_("There are no free licences left for this product. Buy more licences, then try again."),
            None,
        ),
        "13605": (
            PartnerCenterRuleViolation,
            N_("The customer's acceptance of the Microsoft Customer Agreement has to be recorded before buying."),
            None,
        ),
        "600049": (
            PartnerCenterInvalidInput,
            N_("A company registration number is required for a company in this country."),
            _REG_NUMBER,
        ),
        "600050": (
            PartnerCenterInvalidInput,
            N_("The company registration number is not in the format this country uses."),
            _REG_NUMBER,
        ),
        "600002": (
            PartnerCenterInvalidInput,
            N_("A company registration number is not accepted for a company in this country. Leave it empty."),
            _REG_NUMBER,
        ),
        "600051": (
            PartnerCenterInvalidInput,
            N_("A phone number is required for a company in this country."),
            "phoneNumber",
        ),
        "800070": (
            PartnerCenterRuleViolation,
            N_("This product is not sold in the customer's country."),
            None,
        ),
        "2055": (PartnerCenterConflict, ETAG_MESSAGE, None),
        "800060": (
            PartnerCenterConflict,
            N_("Microsoft is still processing an order. Check the subscriptions again in a few minutes."),
            None,
        ),
        "800064": (
            PartnerCenterConflict,
            N_("This order is already being processed. Check the subscriptions again in a few minutes."),
            None,
        ),
        "800065": (PartnerCenterConflict, N_("This order has already been placed."), None),
        "20003": (PartnerCenterNotFound, N_("Microsoft could not find that subscription."), None),
        "60002": (PartnerCenterNotFound, N_("Microsoft could not find that user."), None),
        "400019": (
            PartnerCenterConflict,
            N_("Microsoft changed this product's offer a moment ago. Choose the product again and retry."),
            None,
        ),
    }
)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def error_from_response(
    http_status: int,
    body: Any,
    *,
    request_id: str | None = None,
    correlation_id: str | None = None,
) -> PartnerCenterError:
    """Turn an error response into the right domain error.

    `body` is the parsed JSON (or None). A known Microsoft code wins over the HTTP status because
    Microsoft sends business refusals such as 13605 with 403; only 401, and a 403 without a known
    business code, count as credential problems.
    """
    code = _text(body.get("code")) if isinstance(body, Mapping) else None
    description = _text(body.get("description") or body.get("message")) if isinstance(body, Mapping) else None
    common: dict[str, Any] = {
        "http_status": http_status,
        "description": description,
        "request_id": request_id,
        "correlation_id": correlation_id,
    }
    if http_status == 401:
        return PartnerCenterAuthError(_(AUTH_MESSAGE), **common)
    if code is not None and code in ERROR_TABLE:
        error_class, message, field = ERROR_TABLE[code]
        return error_class(_(message), code=code, field=field, **common)
    if http_status == 403:
        return PartnerCenterAuthError(_(AUTH_MESSAGE), **common)
    if http_status == 429:
        return PartnerCenterThrottled(_(THROTTLED_MESSAGE), **common)
    if http_status == 412:
        return PartnerCenterConflict(_(ETAG_MESSAGE), code="etag_mismatch", **common)
    if http_status == 409:
        return PartnerCenterConflict(_(CONFLICT_MESSAGE), code=code, **common)
    if http_status in (404, 410):
        return PartnerCenterNotFound(_(NOT_FOUND_MESSAGE), **common)
    if http_status >= 500:
        return PartnerCenterUnavailable(_(UNAVAILABLE_MESSAGE), **common)
    suffix = _(" (Microsoft code {code})", code=code) if code else ""
    return PartnerCenterError(
        _("Microsoft refused this request{suffix}. Please check the details or contact the reseller.", suffix=suffix),
        code=code,
        **common,
    )
