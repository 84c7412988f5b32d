"""All domain services, built once by the app factory (or the CLI) and passed down."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.access import AccessService
from services.alerts import AlertService
from services.catalog import CatalogService
from services.conversations import ConversationReferenceService
from services.db import create_session_factory
from services.idempotency import IdempotencyService
from services.jobs import JobService
from services.ledger import SubscriptionLedger
from services.mail import Mailer, MailTransport, OutboxTransport, SmtpTransport
from services.ordering import OrderingService
from services.organisations import OrganisationService
from services.partner_center import PartnerCenterClient
from services.pricing import PriceBook
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
    pricing: PriceBook
    catalog: CatalogService
    ordering: OrderingService


def build_services(engine: AsyncEngine, settings: Settings, partner_center: PartnerCenterClient) -> Services:
    sessions = create_session_factory(engine)
    alerts = AlertService(sessions)
    jobs = JobService(
        sessions,
        alerts,
        lease_seconds=settings.job_lease_seconds,
        poll_interval=settings.job_poll_interval_seconds,
    )
    pricing = PriceBook(sessions, partner_center)
    catalog = CatalogService(sessions, partner_center, alerts)
    return Services(
        engine=engine,
        sessions=sessions,
        organisations=OrganisationService(sessions),
        # `from.id` identifies a caller only in the unauthenticated local mode (the Playground).
        access=AccessService(sessions, allow_channel_user_id=not settings.authenticated),
        alerts=alerts,
        conversations=ConversationReferenceService(sessions),
        idempotency=IdempotencyService(sessions),
        jobs=jobs,
        partner_center=partner_center,
        mailer=Mailer(mail_transport(settings), sender=settings.mail_from, alerts=alerts),
        ledger=SubscriptionLedger(sessions),
        pricing=pricing,
        catalog=catalog,
        ordering=OrderingService(
            sessions,
            catalog,
            pricing,
            partner_center,
            jobs,
            IdempotencyService(sessions),
            SubscriptionLedger(sessions),
            alerts,
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
