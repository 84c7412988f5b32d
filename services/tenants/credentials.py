"""The new tenant's sign-in details: a password Microsoft accepts, and the e-mail that carries it."""

from __future__ import annotations

import html
import logging
import secrets
import string
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services import audit
from services.access import reading_for_recipient
from services.alerts import AlertService
from services.db import utcnow
from services.errors import Conflict, DomainError, NotFound
from services.i18n import N_, _
from services.jobs import JobService, JobView
from services.mail import Mail, Mailer, MailNotDelivered
from services.models import Organisation, TenantServiceRow
from services.organisations import OrganisationService
from services.sealed_secrets import SecretBox, SecretUnreadable
from services.tenants.views import (
    MAIL_ATTEMPTS,
    MAIL_JOB,
    MAIL_PENDING,
    MAIL_QUEUED,
    MAIL_SENT,
    ServiceView,
    TryAgain,
    row_of,
    service_of,
    view_of,
)


def new_password() -> str:
    """16 characters from all four classes (Microsoft's complexity rule needs three)."""
    alphabet = string.ascii_letters + string.digits + "!#%+-=?@"
    while True:
        value = "".join(secrets.choice(alphabet) for _unused in range(16))
        classes = [
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        ]
        if all(classes):
            return value


CREDENTIALS_BODY = N_("""Hello {first_name},

Your new Microsoft 365 tenant for {company} is ready.

Sign in at https://portal.office.com with
  user name: {user_name}
  password:  {{password}}

You will be asked to choose a new password when you first sign in. No charges have arisen yet:
subscriptions are bought separately, in Teams ("add subscription").

Your reseller
""")


CREDENTIALS_HTML = N_("""<p>Hello {first_name},</p>
<p>Your new Microsoft 365 tenant for <b>{company}</b> is ready.</p>
<p>Sign in at <a href="https://portal.office.com">portal.office.com</a> with</p>
<table><tr><td>user name</td><td><code>{user_name}</code></td></tr>
<tr><td>password</td><td><code>{{password}}</code></td></tr></table>
<p>You will be asked to choose a new password when you first sign in. No charges have arisen yet:
subscriptions are bought separately, in Teams (&ldquo;add subscription&rdquo;).</p>
<p>Your reseller</p>
""")


log = logging.getLogger(__name__)


class CredentialsMail:
    """The first admin's sign-in details: sealed until e-mailed, e-mailed once, retried by the durable
    job `tenant.credentials_mail` while the mail server is down, resent by the operator."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        organisations: OrganisationService,
        jobs: JobService,
        mailer: Mailer,
        box: SecretBox,
        alerts: AlertService,
    ) -> None:
        self._sessions = sessions
        self._organisations = organisations
        self._jobs = jobs
        self._mailer = mailer
        self._box = box
        self._alerts = alerts
        jobs.register(MAIL_JOB, self._run_mail)

    def seal(self, password: str) -> str:
        return self._box.seal(password)

    async def _row(self, session: AsyncSession, organisation_id: int) -> TenantServiceRow | None:
        return await row_of(session, organisation_id)

    async def deliver(self, organisation_id: int, job: JobView | None, *, first_name: str = "") -> ServiceView:
        """E-mail the first admin's sign-in details; a mail server that is down queues a retry job
        (or, from the operator's command, says so)."""
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            org = await session.get(Organisation, organisation_id)
            if row is None or org is None:
                raise DomainError(_("The organisation's tenant is no longer recorded."))
            if row.credentials_password is None:
                return view_of(row, org.name)
        # In the contact's language when they are a member; else the requester's (the job reads in it).
        with await reading_for_recipient(self._sessions, organisation_id, row.contact_email):
            mail = Mail(
                to=row.contact_email,
                subject=_("Your Microsoft 365 tenant {domain} is ready", domain=row.domain),
                body=_(
                    CREDENTIALS_BODY, first_name=first_name or _("there"), company=org.name, user_name=row.admin_user
                ),
                secrets={"password": SecretStr(self._box.open(row.credentials_password))},
                html=_(
                    CREDENTIALS_HTML,
                    first_name=html.escape(first_name or _("there")),
                    company=html.escape(org.name),
                    user_name=html.escape(row.admin_user),
                ),
            )
            organisation_name = org.name
        try:
            await self._mailer.send(mail, organisation_id=organisation_id, durable=False)
        except MailNotDelivered:
            async with self._sessions.begin() as session:
                row = await self._row(session, organisation_id)
                if row is not None and row.credentials_status != MAIL_QUEUED:
                    row.credentials_status = MAIL_QUEUED
                    audit.record(
                        session,
                        actor="system:mail",
                        action="tenant.credentials_queued",
                        organisation_id=organisation_id,
                        target=row.contact_email,
                    )
            if job is None:
                raise DomainError(
                    _("The mail server still does not take the message; the password stays stored for another try.")
                ) from None
            if job.kind == MAIL_JOB:
                raise TryAgain(_("the mail server did not take the message")) from None
            await self._jobs.submit(
                MAIL_JOB,
                idempotency_key=f"{MAIL_JOB}:{organisation_id}:{job.id}",
                payload={"first_name": first_name},
                organisation_id=organisation_id,
                requested_by=job.requested_by,
                notify_conversation_id=job.notify_conversation_id,
                max_attempts=MAIL_ATTEMPTS,
            )
        else:
            async with self._sessions.begin() as session:
                row = await self._row(session, organisation_id)
                if row is not None:
                    row.credentials_password = None  # delivered: the stored copy goes
                    row.credentials_status = MAIL_SENT
                    row.credentials_sent_at = utcnow()
                    audit.record(
                        session,
                        actor="system:mail",
                        action="tenant.credentials_sent",
                        organisation_id=organisation_id,
                        target=row.contact_email,
                    )
        async with self._sessions() as session:
            row = await self._row(session, organisation_id)
            if row is None:
                raise DomainError(_("The organisation's tenant is no longer recorded."))
            return view_of(row, organisation_name)

    async def resend(self, organisation_id: int, *, actor: str) -> ServiceView:
        """Deliver sign-in details still waiting for their e-mail (after the retries gave up)."""
        view = await service_of(self._sessions, organisation_id)
        if view is None or not view.active:
            raise NotFound(_("This organisation has no Microsoft tenant created here."))
        if view.credentials_status not in (MAIL_QUEUED, MAIL_PENDING):
            raise Conflict(
                _(
                    "No e-mail is waiting: the sign-in details were delivered (or Microsoft gave none), and the "
                    "stored password is gone. The admin can use “Forgot password” at https://portal.office.com."
                )
            )
        org = await self._organisations.get_by_id(organisation_id)
        log.info("operator %s resends the tenant credentials of organisation %s", actor, organisation_id)
        return await self.deliver(organisation_id, None, first_name=org.contact_first_name)

    async def _run_mail(self, job: JobView) -> Mapping[str, Any]:
        if job.organisation_id is None:
            raise DomainError(_("This e-mail has no organisation."))
        try:
            view = await self.deliver(job.organisation_id, job, first_name=str(job.payload.get("first_name", "")))
        except SecretUnreadable:
            # The key changed since the password was sealed: no retry helps; the operator can.
            org = await self._organisations.get_by_id(job.organisation_id)
            await self._alerts.raise_alert(
                "mail_undeliverable",
                _(
                    "The sign-in e-mail for {name}'s new tenant holds a password sealed with another key than "
                    "SECRETS_KEY now holds. Add that key to SECRETS_KEY (after the current one), then run "
                    "'cspbot tenant resend-credentials {slug}'.",
                    name=org.name,
                    slug=org.slug,
                ),
                dedup_key=f"tenant_credentials_unreadable:{job.organisation_id}",
                severity="error",
                organisation_id=job.organisation_id,
            )
            raise DomainError(
                _(
                    "The e-mail with the sign-in details could not be sent. "
                    "Your reseller has been told and will send it."
                )
            ) from None
        return {
            "message": _(
                "The e-mail with the sign-in details for {domain} has now been sent to {mail_to}.",
                domain=view.domain,
                mail_to=view.mail_to,
            ),
            "domain": view.domain,
        }
