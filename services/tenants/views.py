"""What the tenant service shows: its states, the service view, the audit snapshot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.models import Organisation, TenantServiceRow
from services.tenants.form import mask_email

CREATE_JOB = "tenant.create"
MAIL_JOB = "tenant.credentials_mail"
CREATING, ACTIVE = "creating", "active"
CREATED, LINKED = "created", "linked"
# Credentials e-mail: sent; queued (mail server down, retried); none (Microsoft gave no password).
MAIL_SENT, MAIL_QUEUED, MAIL_PENDING, MAIL_NONE = "sent", "queued", "pending", "none"
CREATE_ATTEMPTS = 4  # tries of the whole job when Microsoft does not answer (the client retries too)
MAIL_ATTEMPTS = 12  # ~30 minutes of back-off before the operator alert says it keeps failing


@dataclass(frozen=True)
class AddressCheck:
    """Microsoft's verdict: `ok` (go on), a `suggestion` to offer for one click, or no match."""

    status: str
    ok: bool
    suggestion: dict[str, str] | None
    message: str


@dataclass(frozen=True)
class MicrosoftContact:
    """Who accepted the Microsoft Customer Agreement for the customer, and when."""

    first_name: str
    last_name: str
    email: str
    accepted_at: datetime

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


@dataclass(frozen=True)
class ServiceView:
    organisation_id: int
    organisation_name: str
    status: str
    origin: str
    customer_id: str | None
    domain: str
    requested_by: str
    requested_at: datetime
    completed_at: datetime | None
    admin_user: str
    mail_to: str
    credentials_status: str
    mca_name: str
    mca_email: str
    mca_accepted_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status == ACTIVE


def view_of(row: TenantServiceRow, organisation_name: str) -> ServiceView:
    return ServiceView(
        organisation_id=row.organisation_id,
        organisation_name=organisation_name,
        status=row.status,
        origin=row.origin,
        customer_id=row.customer_id,
        domain=row.domain,
        requested_by=row.requested_by,
        requested_at=row.requested_at,
        completed_at=row.completed_at,
        admin_user=row.admin_user,
        mail_to=mask_email(row.contact_email) if row.contact_email else "",
        credentials_status=row.credentials_status,
        mca_name=row.mca_name,
        mca_email=row.mca_email,
        mca_accepted_at=row.mca_accepted_at,
    )


def snapshot_of(row: TenantServiceRow) -> dict[str, Any]:
    """What the audit log keeps of the row (never the password)."""
    return {
        "status": row.status,
        "origin": row.origin,
        "customer_id": row.customer_id,
        "domain": row.domain,
        "admin_user": row.admin_user,
        "credentials_status": row.credentials_status,
        "mca_name": row.mca_name,
        "mca_email": row.mca_email,
        "mca_accepted_at": row.mca_accepted_at.isoformat() if row.mca_accepted_at else None,
    }


class TryAgain(Exception):
    """Microsoft (or the mail server) did not answer: the job runner tries again after a back-off."""


async def row_of(session: AsyncSession, organisation_id: int) -> TenantServiceRow | None:
    return await session.scalar(select(TenantServiceRow).where(TenantServiceRow.organisation_id == organisation_id))


async def service_of(sessions: async_sessionmaker[AsyncSession], organisation_id: int) -> ServiceView | None:
    """The organisation's tenant as shown, whoever asks (the operator's CLI has no caller)."""
    async with sessions() as session:
        row = await row_of(session, organisation_id)
        org = await session.get(Organisation, organisation_id)
        return view_of(row, org.name if org else "") if row is not None else None
