"""Partner Center: the one client to Microsoft's CSP API, its wire models, errors and tokens.

The client talks to Microsoft (`https://api.partnercenter.microsoft.com`) or to the built-in
sandbox, which serves the same paths and JSON, so the same code path runs in every mode.
"""

from services.partner_center.auth import MsalTokenProvider, StaticTokenProvider, TokenProvider
from services.partner_center.client import PartnerCenterClient
from services.partner_center.errors import (
    PartnerCenterAuthError,
    PartnerCenterConflict,
    PartnerCenterError,
    PartnerCenterInvalidInput,
    PartnerCenterNotFound,
    PartnerCenterRuleViolation,
    PartnerCenterThrottled,
    PartnerCenterUnavailable,
)

__all__ = [
    "MsalTokenProvider",
    "PartnerCenterAuthError",
    "PartnerCenterClient",
    "PartnerCenterConflict",
    "PartnerCenterError",
    "PartnerCenterInvalidInput",
    "PartnerCenterNotFound",
    "PartnerCenterRuleViolation",
    "PartnerCenterThrottled",
    "PartnerCenterUnavailable",
    "StaticTokenProvider",
    "TokenProvider",
]
