"""All domain services, built once by the app factory (or the CLI) and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.access import AccessService
from services.alerts import AlertService
from services.billing.service import BillingService, NoPriceSource, PriceSource
from services.conversations import ConversationReferenceService
from services.db import create_session_factory
from services.idempotency import IdempotencyService
from services.jobs import JobService
from services.ledger import SubscriptionLedger
from services.mail import Mailer, MailTransport, OutboxTransport, SmtpTransport
from services.organisations import OrganisationService
from services.partner_center import PartnerCenterClient
from services.settings import Settings


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
    billing: BillingService


def build_services(
    engine: AsyncEngine,
    settings: Settings,
    partner_center: PartnerCenterClient,
    price_source: PriceSource | None = None,
) -> Services:
    sessions = create_session_factory(engine)
    alerts = AlertService(sessions)
    ledger = SubscriptionLedger(sessions)
    return Services(
        engine=engine,
        sessions=sessions,
        organisations=OrganisationService(sessions),
        # `from.id` identifies a caller only in the unauthenticated local mode (the Playground).
        access=AccessService(sessions, allow_channel_user_id=not settings.authenticated),
        alerts=alerts,
        conversations=ConversationReferenceService(sessions),
        idempotency=IdempotencyService(sessions),
        jobs=JobService(
            sessions,
            alerts,
            lease_seconds=settings.job_lease_seconds,
            poll_interval=settings.job_poll_interval_seconds,
        ),
        partner_center=partner_center,
        mailer=Mailer(mail_transport(settings), sender=settings.mail_from, alerts=alerts),
        ledger=ledger,
        # Billing prices come from the price book (issue 6): pass `PriceBook` as `price_source`.
        billing=BillingService(
            sessions,
            ledger,
            price_source or NoPriceSource(),
            alerts,
            export_base_url=settings.export_base_url,
            file_consent=settings.authenticated,
        ),
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
