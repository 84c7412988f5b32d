"""All domain services, built once by the app factory (or the CLI) and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.access import AccessService
from services.alerts import AlertService
from services.conversations import ConversationReferenceService
from services.db import create_session_factory
from services.idempotency import IdempotencyService
from services.jobs import JobService
from services.ledger import SubscriptionLedger
from services.mail import Mailer, MailTransport, OutboxTransport, SmtpTransport
from services.organisations import OrganisationService
from services.partner_center import PartnerCenterClient
from services.settings import Settings
from services.users import DirectoryService, LeaseService, LicenceService, UserService, UserSync


@dataclass(frozen=True)
class Services:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    organisations: OrganisationService
    access: AccessService
    alerts: AlertService
    conversations: ConversationReferenceService
    idempotency: IdempotencyService
    jobs: JobService
    partner_center: PartnerCenterClient
    mailer: Mailer
    ledger: SubscriptionLedger
    # Users and licences (issue 8)
    user_sync: UserSync
    users: UserService
    licences: LicenceService
    directory: DirectoryService


def build_services(engine: AsyncEngine, settings: Settings, partner_center: PartnerCenterClient) -> Services:
    sessions = create_session_factory(engine)
    alerts = AlertService(sessions)
    idempotency = IdempotencyService(sessions)
    jobs = JobService(
        sessions,
        alerts,
        lease_seconds=settings.job_lease_seconds,
        poll_interval=settings.job_poll_interval_seconds,
    )
    mailer = Mailer(mail_transport(settings), sender=settings.mail_from, alerts=alerts)
    user_sync = UserSync(sessions, partner_center, LeaseService(sessions), alerts)
    users = UserService(sessions, partner_center, user_sync, idempotency, mailer, jobs)
    return Services(
        engine=engine,
        sessions=sessions,
        organisations=OrganisationService(sessions),
        # `from.id` identifies a caller only in the unauthenticated local mode (the Playground).
        access=AccessService(sessions, allow_channel_user_id=not settings.authenticated),
        alerts=alerts,
        conversations=ConversationReferenceService(sessions),
        idempotency=idempotency,
        jobs=jobs,
        partner_center=partner_center,
        mailer=mailer,
        ledger=SubscriptionLedger(sessions),
        user_sync=user_sync,
        users=users,
        licences=LicenceService(sessions, partner_center, users, user_sync, idempotency),
        directory=DirectoryService(sessions, users, idempotency, mailer),
    )


def mail_transport(settings: Settings) -> MailTransport:
    if settings.smtp_host.strip():
        return SmtpTransport(
            settings.smtp_host.strip(),
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    return OutboxTransport(settings.mail_outbox_dir)
