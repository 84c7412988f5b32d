"""Suspension approvals: an admin asks, an approver of the same organisation decides — once.

Every status move is a conditional UPDATE on the current status, so two approvers clicking together
make one decision (the other reads it), and an expired request cannot be approved. Approve moves the
request to `suspending`; the suspension then runs (a durable job) and ends `suspended`, or `failed`
with Microsoft's reason and nothing changed — an approver may retry a failed one.

One approval, module by module, in the order it happens:

1. `dialogs/subscriptions.py` (a suspension: "Send to an approver") or `dialogs/spending.py`
   (`ask_an_approver`: a purchase, seats or an add-on above `services/spending.py`'s policy, the
   change it would run recorded by `services/spending_requests.request_payload`) — records the
   request here (`request_suspension`, `request_spending`);
2. `dialogs/approval_delivery.py` — `ApprovalPosting` posts its card (`cards/approvals.py`) to the
   approvers' 1:1 chats and the approvals channel and schedules its expiry job;
   `ApprovalDelivery.deliver_waiting` posts it later to an approver who says hi (`app.py`);
3. `bot/approvals.py` — the card's Approve/Reject/Retry/Refresh invokes call `decide` here and
   submit the job that carries it out (`approval.suspend`, or `approval.spend` running
   `services/spending_requests.carry_out`), then refresh every copy and tell the requester
   (`ApprovalDelivery`); the expiry job (`approval.expire`) does the same for a request nobody decided.

For the people who use it: docs/approvals.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import Caller
from services.conversations import organisation_channel
from services.db import utcnow
from services.errors import DomainError, InvalidInput, NotFound, PermissionDenied
from services.i18n import N_, _
from services.models import Approval, ApprovalChannel, ConversationReferenceRow, Member, MemberRole, Organisation
from services.payloads import row_id
from services.roles import Permission, Role
from services.subscriptions.changes import SubscriptionChanges
from services.subscriptions.common import as_utc, organisation_of, row_in_organisation

log = logging.getLogger(__name__)

PENDING, SUSPENDING, SUSPENDED, FAILED, REJECTED, EXPIRED, WITHDRAWN = (
    "pending",
    "suspending",
    "suspended",
    "failed",
    "rejected",
    "expired",
    "withdrawn",
)
RUNNING, DONE = "running", "done"  # a spending request: approved and being carried out; carried out
OPEN = (PENDING, SUSPENDING, RUNNING, FAILED)
SUSPEND, PURCHASE, SEATS, ADDON = "suspend", "purchase", "seats", "addon"  # kinds of request
MAX_REASON = 500
NOT_YOURS = N_("That request is not one of your organisation's.")


@dataclass(frozen=True)
class ApprovalView:
    id: int
    organisation_id: int
    subscription_id: str
    subscription_name: str
    requested_by_member_id: int | None
    requested_by: str
    requester_name: str
    reason: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str
    decider_name: str
    decided_at: datetime | None
    outcome: str
    posts: tuple[dict[str, Any], ...]
    kind: str = SUSPEND
    payload: dict[str, Any] = field(default_factory=dict)
    policy: dict[str, Any] = field(default_factory=dict)  # the spending policy when it was asked

    @property
    def is_open(self) -> bool:
        return self.status in OPEN

    @property
    def running_status(self) -> str:
        """The status an approval moves it to while its change runs."""
        return SUSPENDING if self.kind == SUSPEND else RUNNING


@dataclass(frozen=True)
class Decision:
    approval: ApprovalView
    decided_now: bool  # False: someone else decided first (or it had expired); the card shows what happened
    message: str
    expired_now: bool = False  # this call found it due and marked it expired: tell the requester, update cards


@dataclass(frozen=True)
class Approver:
    member_id: int
    name: str
    channel_user_id: str | None
    email: str = ""


def _view(row: Approval) -> ApprovalView:
    return ApprovalView(
        id=row.id,
        organisation_id=row.organisation_id,
        subscription_id=row.subscription_id,
        subscription_name=row.subscription_name,
        requested_by_member_id=row.requested_by_member_id,
        requested_by=row.requested_by,
        requester_name=row.requester_name,
        reason=row.reason,
        status=row.status,
        created_at=as_utc(row.created_at) or row.created_at,
        expires_at=as_utc(row.expires_at) or row.expires_at,
        decided_by=row.decided_by,
        decider_name=row.decider_name,
        decided_at=as_utc(row.decided_at),
        outcome=row.outcome,
        posts=tuple(dict(post) for post in row.posts or ()),
        kind=row.kind or SUSPEND,
        payload=dict(row.payload or {}),
        policy=dict(row.policy or {}),
    )


class ApprovalService:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        changes: SubscriptionChanges,
        *,
        expiry: timedelta = timedelta(hours=24),
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._sessions = sessions
        self._changes = changes
        self.expiry = expiry
        self._clock = clock

    # --- asking -----------------------------------------------------------------------------------

    async def request_suspension(self, caller: Caller, subscription_id: Any, reason: Any) -> tuple[ApprovalView, bool]:
        """A new request (True), or the open one for that subscription (False)."""
        caller.require(Permission.REQUEST_SUSPENSION)
        why = " ".join(str(reason or "").split())
        if not why:
            raise InvalidInput(
                _("Say why the subscription should be suspended; the approver reads it."), field="reason"
            )
        if len(why) > MAX_REASON:
            raise InvalidInput(
                _("Keep the reason under {MAX_REASON} characters.", MAX_REASON=MAX_REASON), field="reason"
            )
        async with self._sessions() as session:
            row = await row_in_organisation(session, caller.organisation_id, subscription_id)
            if row.status != "active":
                raise DomainError(
                    _(
                        "{name} is {status}; only an active subscription can be suspended.",
                        name=row.name,
                        status=row.status,
                    )
                )
            existing = await session.scalar(
                select(Approval).where(
                    Approval.organisation_id == caller.organisation_id,
                    Approval.subscription_id == row.id,
                    Approval.kind == SUSPEND,
                    Approval.status.in_(OPEN),
                    Approval.expires_at > self._clock(),
                )
            )
            if existing is not None:
                return _view(existing), False
            approval = await self._record_request(
                session,
                caller,
                kind=SUSPEND,
                subscription_id=row.id,
                subscription_name=row.name,
                reason=why,
                audited={"subscription": row.id, "kind": SUSPEND, "reason": why},
            )
            return _view(approval), True

    async def request_spending(
        self,
        caller: Caller,
        kind: str,
        *,
        what: str,
        subscription_id: str,
        reasons: list[str],
        payload: dict[str, Any],
        policy: dict[str, Any],
    ) -> tuple[ApprovalView, bool]:
        """A spending request (a purchase or more seats above the policy): a new one (True), or the
        open one already asked with the same card (False). It keeps the policy it was asked under."""
        caller.require(Permission.MANAGE_SERVICES)
        key = str(payload.get("key") or "")
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Approval).where(
                    Approval.organisation_id == caller.organisation_id,
                    Approval.kind == kind,
                    Approval.status.in_((*OPEN, DONE)),
                )
            )
            existing = next((row for row in rows if key and (row.payload or {}).get("key") == key), None)
            if existing is not None:  # the same card clicked again
                return _view(existing), False
            approval = await self._record_request(
                session,
                caller,
                kind=kind,
                subscription_id=subscription_id,
                subscription_name=what[:200],
                reason=" ".join(reasons)[: MAX_REASON * 2],
                audited={"kind": kind, "what": what, "reasons": reasons, "policy": policy},
                payload=payload,
                policy=policy,
            )
            return _view(approval), True

    async def _record_request(
        self,
        session: AsyncSession,
        caller: Caller,
        *,
        kind: str,
        subscription_id: str,
        subscription_name: str,
        reason: str,
        audited: dict[str, Any],
        payload: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
    ) -> Approval:
        """One new request, pending until its expiry, with its audit entry, committed: the one writer of
        both kinds (a suspension, spending above the policy)."""
        now = self._clock()
        approval = Approval(
            organisation_id=caller.organisation_id,
            kind=kind,
            subscription_id=subscription_id,
            subscription_name=subscription_name,
            requested_by_member_id=caller.member_id,
            requested_by=caller.email,
            requester_name=caller.display_name or caller.email,
            reason=reason,
            status=PENDING,
            created_at=now,
            expires_at=now + self.expiry,
            posts=[],
            payload=payload or {},
            policy=policy or {},
        )
        session.add(approval)
        await session.flush()
        audit.record(
            session,
            actor=caller.actor,
            action="approval.request",
            organisation_id=caller.organisation_id,
            target=f"approval:{approval.id}",
            after=audited,
        )
        await session.commit()
        return approval

    async def run_spending(self, approval_id: int, carry_out: Callable[[ApprovalView], Awaitable[str]]) -> ApprovalView:
        """Carry out an approved spending request once: ends `done`, or `failed` with the reason."""
        return await self._run(approval_id, RUNNING, DONE, carry_out)

    async def get(self, caller: Caller, approval_id: Any) -> ApprovalView:
        """Any member of the organisation may see a request (the card shows its status)."""
        return (await self.look(caller, approval_id))[0]

    async def look(self, caller: Caller, approval_id: Any) -> tuple[ApprovalView, bool]:
        """The request as `get` shows it, and whether this look found it due and expired it."""
        async with self._sessions() as session:
            approval = await self._in_organisation(session, caller.organisation_id, approval_id)
        return await self._expire_if_due(approval)

    async def load(self, approval_id: int) -> ApprovalView:
        async with self._sessions() as session:
            approval = await session.get(Approval, approval_id)
            if approval is None:
                raise NotFound(_("That request does not exist any more."))
            return _view(approval)

    @staticmethod
    async def _in_organisation(session: AsyncSession, organisation_id: int, approval_id: Any) -> ApprovalView:
        approval = await session.get(Approval, row_id(approval_id, _(NOT_YOURS)))
        if approval is None or approval.organisation_id != organisation_id:
            raise NotFound(_(NOT_YOURS))
        return _view(approval)

    async def _expire_if_due(self, approval: ApprovalView) -> tuple[ApprovalView, bool]:
        """Mark a due pending request expired. True only for the one call that moved it (a
        conditional UPDATE), so the requester is told exactly once, whoever noticed first."""
        if approval.status != PENDING or self._clock() < approval.expires_at:
            return approval, False
        async with self._sessions() as session:
            result = await session.execute(
                update(Approval)
                .where(Approval.id == approval.id, Approval.status == PENDING, Approval.expires_at <= self._clock())
                .values(status=EXPIRED)
            )
            moved = result.rowcount == 1  # type: ignore[attr-defined]
            if moved:
                audit.record(
                    session,
                    actor="system",
                    action="approval.expire",
                    organisation_id=approval.organisation_id,
                    target=f"approval:{approval.id}",
                    before={"status": PENDING},
                    after={"status": EXPIRED},
                )
            await session.commit()
        return await self.load(approval.id), moved

    async def expire(self, approval_id: int) -> tuple[ApprovalView, bool]:
        """The expiry check of one request (the job scheduled for its expiry time)."""
        return await self._expire_if_due(await self.load(approval_id))

    async def expire_due(self, *, limit: int = 100) -> list[ApprovalView]:
        """Every pending request past its time, marked expired; returns the ones this call expired."""
        async with self._sessions() as session:
            rows = list(
                await session.scalars(
                    select(Approval)
                    .where(Approval.status == PENDING, Approval.expires_at <= self._clock())
                    .order_by(Approval.id)
                    .limit(limit)
                )
            )
            due = [_view(row) for row in rows]
        expired = []
        for approval in due:
            view, moved = await self._expire_if_due(approval)
            if moved:
                expired.append(view)
        return expired

    # --- deciding ---------------------------------------------------------------------------------

    async def decide(self, caller: Caller, approval_id: Any, *, approve: bool) -> Decision:
        caller.require(Permission.DECIDE_SUSPENSION)
        async with self._sessions() as session:
            approval = await self._in_organisation(session, caller.organisation_id, approval_id)
            org = await organisation_of(session, caller.organisation_id)
            allow_self = org.allow_self_approval
        if approval.requested_by_member_id == caller.member_id and not allow_self:
            raise PermissionDenied(_("You asked for this suspension yourself; another approver has to decide."))
        approval, expired_now = await self._expire_if_due(approval)
        if approval.status != PENDING:
            return Decision(approval, False, _already(approval), expired_now=expired_now)
        now = self._clock()
        async with self._sessions() as session:
            result = await session.execute(
                update(Approval)
                .where(Approval.id == approval.id, Approval.status == PENDING, Approval.expires_at > now)
                .values(
                    status=approval.running_status if approve else REJECTED,
                    decided_by=caller.email,
                    decider_name=caller.display_name or caller.email,
                    decided_by_member_id=caller.member_id,
                    decided_at=now,
                )
            )
            won = result.rowcount == 1  # type: ignore[attr-defined]
            if won:
                audit.record(
                    session,
                    actor=caller.actor,
                    action="approval.approve" if approve else "approval.reject",
                    organisation_id=caller.organisation_id,
                    target=f"approval:{approval.id}",
                    before={"status": PENDING},
                    after={"status": approval.running_status if approve else REJECTED},
                )
            await session.commit()
        current = await self.load(approval.id)
        if not won:
            current, expired_now = await self._expire_if_due(current)  # it fell due meanwhile
            return Decision(current, False, _already(current), expired_now=expired_now)
        running = _("Approved — suspending now.") if approval.kind == SUSPEND else _("Approved — carrying it out now.")
        return Decision(current, True, running if approve else _("Rejected — nothing was changed."))

    async def withdraw(self, caller: Caller, approval_id: Any) -> Decision:
        """The requester (or another admin) takes back a request no approver has decided yet."""
        caller.require(Permission.REQUEST_SUSPENSION)
        async with self._sessions() as session:
            approval = await self._in_organisation(session, caller.organisation_id, approval_id)
        approval, expired_now = await self._expire_if_due(approval)
        if approval.status != PENDING:
            return Decision(approval, False, _already(approval), expired_now=expired_now)
        async with self._sessions() as session:
            result = await session.execute(
                update(Approval)
                .where(Approval.id == approval.id, Approval.status == PENDING)
                .values(
                    status=WITHDRAWN,
                    decided_by=caller.email,
                    decider_name=caller.display_name or caller.email,
                    decided_by_member_id=caller.member_id,
                    decided_at=self._clock(),
                )
            )
            won = result.rowcount == 1  # type: ignore[attr-defined]
            if won:
                audit.record(
                    session,
                    actor=caller.actor,
                    action="approval.withdraw",
                    organisation_id=caller.organisation_id,
                    target=f"approval:{approval.id}",
                    before={"status": PENDING},
                    after={"status": WITHDRAWN},
                )
            await session.commit()
        current = await self.load(approval.id)
        if not won:
            return Decision(current, False, _already(current))
        return Decision(
            current,
            True,
            _("Withdrawn: {subscription_name} stays active.", subscription_name=current.subscription_name),
        )

    async def open_requests(self, organisation_id: int) -> dict[str, ApprovalView]:
        """The organisation's undecided or running requests, by subscription id (what the list shows)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Approval)
                .where(
                    Approval.organisation_id == organisation_id,
                    Approval.status.in_(OPEN),
                    Approval.kind == SUSPEND,
                )
                .order_by(Approval.id)
            )
            views = [_view(row) for row in rows]
        now = self._clock()
        return {view.subscription_id: view for view in views if view.status != PENDING or view.expires_at > now}

    async def waiting_for(self, approver: Approver, organisation_id: int, chat_id: str) -> list[ApprovalView]:
        """Undecided requests this approver may decide whose card has not reached their chat `chat_id`."""
        allow_self = await self.allows_self_approval(organisation_id)
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Approval)
                .where(
                    Approval.organisation_id == organisation_id,
                    Approval.status == PENDING,
                    Approval.expires_at > self._clock(),
                )
                .order_by(Approval.id)
            )
            views = [_view(row) for row in rows]
        return [
            view
            for view in views
            if (allow_self or view.requested_by_member_id != approver.member_id)
            and not any(post.get("conversation_id") == chat_id for post in view.posts)
        ]

    async def retry(self, caller: Caller, approval_id: Any) -> Decision:
        """Run a failed suspension again (an approver; the same rules as deciding)."""
        caller.require(Permission.DECIDE_SUSPENSION)
        async with self._sessions() as session:
            approval = await self._in_organisation(session, caller.organisation_id, approval_id)
            result = await session.execute(
                update(Approval)
                .where(Approval.id == approval.id, Approval.status == FAILED)
                .values(status=approval.running_status, outcome="")
            )
            won = result.rowcount == 1  # type: ignore[attr-defined]
            if won:
                audit.record(
                    session,
                    actor=caller.actor,
                    action="approval.retry",
                    organisation_id=caller.organisation_id,
                    target=f"approval:{approval.id}",
                )
            await session.commit()
        current = await self.load(approval.id)
        return Decision(current, won, _("Trying it again.") if won else _already(current))

    async def run_suspension(self, approval_id: int) -> ApprovalView:
        """Suspend at Microsoft; ends `suspended`, or `failed` with the reason and nothing changed."""

        async def suspend(approval: ApprovalView) -> str:
            return await self._changes.suspend_approved(
                approval.organisation_id,
                approval.subscription_id,
                actor=approval.decided_by or "approver",
                approval_id=approval.id,
            )

        return await self._run(approval_id, SUSPENDING, SUSPENDED, suspend)

    async def _run(
        self, approval_id: int, running: str, succeeded: str, work: Callable[[ApprovalView], Awaitable[str]]
    ) -> ApprovalView:
        """Run an approved request's change once (only from `running`); it ends `succeeded`, or
        `failed` with the reason — never left running: an approver can retry, the operator has the log."""
        approval = await self.load(approval_id)
        if approval.status != running:
            return approval
        actor = approval.decided_by or "approver"
        try:
            outcome, status = await work(approval), succeeded
        except DomainError as error:
            log.warning("approval %s: the approved change failed: %s", approval.id, error.message)
            outcome, status = error.message, FAILED
        except Exception:
            log.exception("approval %s: the approved change failed unexpectedly", approval.id)
            outcome, status = _("Something went wrong on our side."), FAILED
        what = "suspension" if approval.kind == SUSPEND else approval.kind
        async with self._sessions() as session:
            await session.execute(
                update(Approval)
                .where(Approval.id == approval.id, Approval.status == running)
                .values(status=status, outcome=outcome)
            )
            audit.record(
                session,
                actor=actor,
                action=f"approval.{what}_{status}",
                organisation_id=approval.organisation_id,
                target=f"approval:{approval.id}",
                after={"status": status, "outcome": outcome},
            )
            await session.commit()
        return await self.load(approval.id)

    # --- where the cards go -------------------------------------------------------------------------

    async def add_post(
        self,
        approval_id: int,
        conversation_id: str,
        activity_id: str | None,
        *,
        approver: bool,
        member_id: int | None = None,
    ) -> None:
        """Record a posted copy of the card; `member_id`: whose 1:1 chat it is in (its copy is
        updated in that member's language), None for the approvals channel's."""
        post: dict[str, object] = {"conversation_id": conversation_id, "activity_id": activity_id, "approver": approver}
        if member_id is not None:
            post["member_id"] = member_id
        async with self._sessions() as session:
            approval = await session.get(Approval, approval_id)
            if approval is None:
                return
            approval.posts = [*(approval.posts or []), post]
            await session.commit()

    async def approvers(self, organisation_id: int) -> list[Approver]:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Member)
                .join(MemberRole, MemberRole.member_id == Member.id)
                .where(Member.organisation_id == organisation_id, MemberRole.role == Role.APPROVER.value)
                .order_by(Member.id)
            )
            return [Approver(m.id, m.display_name or m.email, m.channel_user_id, m.email) for m in rows]

    async def allows_self_approval(self, organisation_id: int) -> bool:
        async with self._sessions() as session:
            return bool((await organisation_of(session, organisation_id)).allow_self_approval)

    async def channel_of(self, organisation_id: int) -> str | None:
        async with self._sessions() as session:
            row = await session.get(ApprovalChannel, organisation_id)
            return row.conversation_id if row is not None else None

    async def channel_choices(self, slug: str) -> tuple[str | None, list[tuple[str, str]]]:
        """The organisation's approvals channel and the team channels / group chats the bot knows
        for it (what the operator can pick from)."""
        async with self._sessions() as session:
            org = await session.scalar(select(Organisation).where(Organisation.slug == slug.strip().lower()))
            if org is None:
                raise NotFound(_("No organisation {slug!r}.", slug=slug))
            current = await session.get(ApprovalChannel, org.id)
            rows = await session.scalars(
                select(ConversationReferenceRow)
                .where(
                    ConversationReferenceRow.organisation_id == org.id,
                    ConversationReferenceRow.conversation_type != "personal",
                )
                .order_by(ConversationReferenceRow.updated_at.desc())
            )
            return (current.conversation_id if current else None), [
                (row.conversation_id, row.conversation_type) for row in rows
            ]

    async def set_channel(self, slug: str, conversation_id: str | None, *, actor: str) -> str | None:
        """The operator's setting: also post approval cards in this channel (None: only 1:1 chats).
        The channel must be a conversation the bot was added to, of this organisation."""
        async with self._sessions() as session:
            org = await session.scalar(select(Organisation).where(Organisation.slug == slug.strip().lower()))
            if org is None:
                raise NotFound(_("No organisation {slug!r}.", slug=slug))
            row = await session.get(ApprovalChannel, org.id)
            before = {"conversation_id": row.conversation_id} if row is not None else None
            if conversation_id is None:
                if row is not None:
                    await session.delete(row)
            else:
                channel = await organisation_channel(session, org.id, conversation_id)
                if row is None:
                    row = ApprovalChannel(organisation_id=org.id, conversation_id=channel)
                    session.add(row)
                row.conversation_id = channel
                row.set_by = actor
                row.set_at = utcnow()
            audit.record(
                session,
                actor=actor,
                action="approval.channel",
                organisation_id=org.id,
                before=before,
                after={"conversation_id": conversation_id},
            )
            await session.commit()
        return conversation_id


def _already(approval: ApprovalView) -> str:
    who = approval.decider_name or _("another approver")
    if approval.kind != SUSPEND and approval.status in (RUNNING, DONE, FAILED):
        return {
            RUNNING: _("Already approved by {who}; it is being carried out.", who=who),
            DONE: _("Already approved by {who}; it was carried out.", who=who),
            FAILED: _("Approved by {who}, but it failed: {outcome}", who=who, outcome=approval.outcome),
        }[approval.status]
    return {
        SUSPENDING: _("Already approved by {who}; the suspension is running.", who=who),
        SUSPENDED: _("Already approved by {who}; the subscription is suspended.", who=who),
        FAILED: _("Approved by {who}, but the suspension failed: {outcome}", who=who, outcome=approval.outcome),
        REJECTED: _("Already rejected by {who}.", who=who),
        EXPIRED: _("This request expired before anyone decided; nothing was changed. The admin can ask again."),
        WITHDRAWN: _("Withdrawn by {who}; nothing was changed.", who=who),
    }.get(approval.status, _("This request was already decided."))
