"""The approval card: an Action.Execute card with `refresh.userIds`, so the approvers named there see
Approve/Reject (or Retry after a failure) and everyone else sees the status. Pure."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cards.base import Card, card, facts, heading, text
from services import formatting
from services.i18n import _

APPROVE, REJECT, RETRY, REFRESH = "approval_approve", "approval_reject", "approval_retry", "approval_refresh"


@dataclass(frozen=True)
class ApprovalCardView:
    approval_id: int
    subscription_name: str
    requester_name: str
    reason: str
    requested_at: datetime
    expires_at: datetime
    status: str  # pending | suspending | suspended | failed | rejected | expired | withdrawn
    decider_name: str = ""
    decided_at: datetime | None = None
    outcome: str = ""
    approver_user_ids: Sequence[str] = ()
    approver_names: Sequence[str] = ()
    kind: str = "suspend"  # or a spending request: purchase | seats | addon
    details: Sequence[tuple[str, str]] = ()  # a spending request: what it costs and commits to
    policy_lines: Sequence[str] = ()  # the spending policy when it was asked


def status_line(view: ApprovalCardView) -> tuple[str, str]:
    """What happened, and the colour it is shown in."""
    who, at = view.decider_name or _("an approver"), formatting.datetime_utc(view.decided_at)
    if view.status == "pending":
        return _(
            "Waiting for an approver (expires {datetime_utc})", datetime_utc=formatting.datetime_utc(view.expires_at)
        ), "Default"
    if view.status == "suspending":
        return _("Approved by {who} ({at}) — suspending…", who=who, at=at), "Accent"
    if view.status == "running":
        return _("Approved by {who} ({at}) — carrying it out…", who=who, at=at), "Accent"
    if view.status == "done":
        return _("Approved by {who} ({at}) — {outcome}", who=who, at=at, outcome=view.outcome), "Good"
    if view.status == "suspended":
        return _("Approved by {who} ({at}) — suspended", who=who, at=at), "Good"
    if view.status == "failed":
        return _(
            "Approved by {who} ({at}) — failed: {outcome} Retry when Microsoft is reachable.",
            who=who,
            at=at,
            outcome=view.outcome,
        ), "Attention"
    if view.status == "rejected":
        return _("Rejected by {who} ({at}) — nothing was changed", who=who, at=at), "Warning"
    if view.status == "withdrawn":
        return _("Withdrawn by {who} ({at}) — nothing was changed", who=who, at=at), "Warning"
    if view.status == "expired":
        return _(
            "Expired {datetime_utc} — nothing was changed", datetime_utc=formatting.datetime_utc(view.expires_at)
        ), "Warning"
    return view.status, "Default"


def _names(names: Sequence[str]) -> str:
    shown = list(names)
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + _(" or ") + shown[-1]


def _execute(title: str, verb: str, approval_id: int, style: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {
        "type": "Action.Execute",
        "title": title,
        "verb": verb,
        "data": {"approval_id": approval_id},
    }
    if style:
        action["style"] = style
    return action


def build_approval_card(view: ApprovalCardView, *, for_approver: bool, in_channel: bool = False) -> Card:
    """`for_approver`: the card an approver sees (with the decision buttons while they apply).
    `in_channel`: the copy in the approvals channel, which everyone there sees: it has the buttons too
    and says who may decide (Teams refreshes it per person where it can; not every client can, and a
    click by someone else is refused), while a non-approver's own refresh shows the status only."""
    line, colour = status_line(view)
    if view.kind == "suspend":
        body = [
            heading(_("Suspension request")),
            facts(
                [
                    (_("Subscription"), view.subscription_name),
                    (_("Asked by"), view.requester_name),
                    (_("Why"), view.reason),
                    (_("Asked at"), formatting.datetime_utc(view.requested_at)),
                ]
            ),
        ]
    else:
        body = [
            heading(_("Spending request")),
            facts(
                [
                    (_("What"), view.subscription_name),
                    (_("Asked by"), view.requester_name),
                    *view.details,
                    (_("Asked at"), formatting.datetime_utc(view.requested_at)),
                ]
            ),
            text(_("**Why an approver**: {reason}", reason=view.reason)),
            text(_("Policy when it was asked: ") + " ".join(view.policy_lines), subtle=True),
        ]
    body.append(text(line, weight="Bolder", color=colour))
    decides = for_approver or in_channel
    if in_channel and view.status in ("pending", "failed") and view.approver_names:
        body.append(text(_("Only {names} can decide.", names=_names(view.approver_names)), subtle=True))
    actions: list[dict[str, Any]] = []
    if decides and view.status == "pending":
        actions = [
            _execute(_("Approve"), APPROVE, view.approval_id, "positive"),
            _execute(_("Reject"), REJECT, view.approval_id, "destructive"),
        ]
    elif decides and view.status == "failed":
        actions = [_execute(_("Retry"), RETRY, view.approval_id, "positive")]
    result = card(body, actions)
    result["refresh"] = {
        "action": {
            "type": "Action.Execute",
            "title": _("Refresh"),
            "verb": REFRESH,
            "data": {"approval_id": view.approval_id},
        },
        "userIds": list(view.approver_user_ids)[:60],
    }
    return result
