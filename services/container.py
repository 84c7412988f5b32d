"""All domain services, built once by the app factory (or the CLI) and passed down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

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
from services.organisations import OrganisationService
from services.partner_center import PartnerCenterClient
from services.pricing import PriceBook
from services.settings import Settings
from services.subscriptions import ApprovalService, SubscriptionChanges, SubscriptionService


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
    # issue 7: subscriptions (list/sync, changes, approvals)
    subscriptions: SubscriptionService
    subscription_changes: SubscriptionChanges
    approvals: ApprovalService


def build_services(engine: AsyncEngine, settings: Settings, partner_center: PartnerCenterClient) -> Services:
    sessions = create_session_factory(engine)
    alerts = AlertService(sessions)
    # `from.id` identifies a caller only in the unauthenticated local mode (the Playground).
    access = AccessService(
        sessions, allow_channel_user_id=not settings.authenticated, cache_seconds=settings.caller_cache_seconds
    )
    ledger = SubscriptionLedger(sessions)
    pricing = PriceBook(sessions, partner_center)
    catalog = CatalogService(sessions, partner_center, alerts)
    idempotency = IdempotencyService(sessions)
    subscriptions = SubscriptionService(
        sessions,
        partner_center,
        catalog,
        pricing,
        ledger,
        refresh_after=timedelta(minutes=settings.subscriptions_refresh_minutes),
    )
    changes = SubscriptionChanges(sessions, partner_center, catalog, pricing, ledger, idempotency, subscriptions)
    return Services(
        engine=engine,
        sessions=sessions,
        organisations=OrganisationService(sessions, on_access_change=access.forget),
        access=access,
        alerts=alerts,
        conversations=ConversationReferenceService(sessions),
        idempotency=idempotency,
        jobs=JobService(
            sessions,
            alerts,
            lease_seconds=settings.job_lease_seconds,
            poll_interval=settings.job_poll_interval_seconds,
        ),
        partner_center=partner_center,
        mailer=Mailer(mail_transport(settings), sender=settings.mail_from, alerts=alerts),
        ledger=ledger,
        pricing=pricing,
        catalog=catalog,
        subscriptions=subscriptions,
        subscription_changes=changes,
        approvals=ApprovalService(sessions, changes, expiry=timedelta(hours=settings.approval_expiry_hours)),
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
