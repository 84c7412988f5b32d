"""Managing subscriptions (SPEC §3): the list and sync, changes under Microsoft's rules, approvals."""

from services.subscriptions.approvals import ApprovalService, ApprovalView, Decision
from services.subscriptions.changes import (
    AddonOffer,
    CancelPlan,
    ChangeResult,
    QuantityPlan,
    StaleSubscription,
    SubscriptionChanges,
)
from services.subscriptions.listing import SubscriptionPage, SubscriptionService, SubscriptionView, SyncResult

__all__ = [
    "AddonOffer",
    "ApprovalService",
    "ApprovalView",
    "CancelPlan",
    "ChangeResult",
    "Decision",
    "QuantityPlan",
    "StaleSubscription",
    "SubscriptionChanges",
    "SubscriptionPage",
    "SubscriptionService",
    "SubscriptionView",
    "SyncResult",
]
