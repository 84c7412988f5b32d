"""All domain services, built once by the app factory (or the CLI) and passed down."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.access import AccessService
from services.activity_receipts import ActivityReceipts
from services.alerts import AlertService
from services.billing.service import BillingService
from services.catalog import CatalogService
from services.clock import SYSTEM_CLOCK, Clock
from services.conversations import ConversationReferenceService
from services.db import create_session_factory
from services.idempotency import IdempotencyService
from services.jobs import JobService
from services.ledger import SubscriptionLedger
from services.mail import Mailer, MailTransport, OutboxTransport, SmtpTransport, smtp_transport_from_url
from services.ordering import OrderingService
from services.organisations import OrganisationService
from services.outbound_hosts import OutboundHosts
from services.partner_center import PartnerCenterAuthError, PartnerCenterClient
from services.partner_center.auth import TokenKind
from services.pricing import PriceBook
from services.sealed_secrets import SecretBox, open_secret_box
from services.sent_cards import SentCardStore
from services.settings import Settings
from services.spending import SpendingPolicies
from services.subscriptions import ApprovalService, SubscriptionChanges, SubscriptionService
from services.tenants import CredentialsMail, TenantService
from services.users import DirectoryService, LeaseService, LicenceService, UserService, UserSync
from services.warnings.service import WarningService


@dataclass(frozen=True)
class Services:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    organisations: OrganisationService
    access: AccessService
    alerts: AlertService
    conversations: ConversationReferenceService
    activity_receipts: ActivityReceipts  # a re-delivered activity is dropped
    idempotency: IdempotencyService
    jobs: JobService
    partner_center: PartnerCenterClient
    clock: Clock  # Microsoft's "now": the system clock, or the built-in sandbox's
    secret_box: SecretBox  # seals what waits in the database to be used (a password for its e-mail)
    mailer: Mailer
    ledger: SubscriptionLedger
    pricing: PriceBook
    catalog: CatalogService
    tenants: TenantService
    # Users and licences
    user_sync: UserSync
    users: UserService
    licences: LicenceService
    directory: DirectoryService
    ordering: OrderingService
    billing: BillingService
    subscriptions: SubscriptionService
    subscription_changes: SubscriptionChanges
    approvals: ApprovalService
    sent_cards: SentCardStore
    # Warnings before money is locked in
    warnings: WarningService
    spending: SpendingPolicies  # when a purchase or more seats need an approver
    # Where URLs named by activities may be sent: connector service URLs, file-consent uploads.
    outbound_hosts: OutboundHosts


def build_services(
    engine: AsyncEngine, settings: Settings, partner_center: PartnerCenterClient, clock: Clock = SYSTEM_CLOCK
) -> Services:
    sessions = create_session_factory(engine)
    alerts = AlertService(sessions)
    # `from.id` identifies a caller only in the unauthenticated local mode (the Playground).
    access = AccessService(
        sessions, allow_channel_user_id=not settings.authenticated, cache_seconds=settings.caller_cache_seconds
    )
    partner_center.on_auth_failure = partner_center_auth_alert(alerts)
    organisations = OrganisationService(sessions, on_access_change=access.forget)
    idempotency = IdempotencyService(sessions)
    jobs = JobService(
        sessions,
        alerts,
        lease_seconds=settings.job_lease_seconds,
        poll_interval=settings.job_poll_interval_seconds,
    )
    jobs.set_reader(access.job_reader)  # a job and its outcome read in its requester's language
    box = open_secret_box(settings.secrets_key.get_secret_value(), settings.secrets_key_path)
    mailer = Mailer(
        mail_transport(settings), sender=settings.mail_from, alerts=alerts, sessions=sessions, jobs=jobs, box=box
    )
    # Microsoft's "now" (`clock`): the system clock, or the built-in sandbox's movable clock.
    microsoft_now = clock.now
    user_sync = UserSync(
        sessions,
        partner_center,
        LeaseService(sessions),
        alerts,
        microsoft_now=microsoft_now,
        concurrency=settings.users_sync_concurrency,
    )
    users = UserService(sessions, partner_center, user_sync, idempotency, mailer, jobs)
    pricing = PriceBook(sessions, partner_center, clock)
    catalog = CatalogService(sessions, partner_center, alerts)
    ledger = SubscriptionLedger(sessions)
    subscriptions = SubscriptionService(
        sessions,
        partner_center,
        catalog,
        pricing,
        ledger,
        refresh_after=timedelta(minutes=settings.subscriptions_refresh_minutes),
        clock=clock,
    )
    changes = SubscriptionChanges(sessions, partner_center, catalog, pricing, ledger, idempotency, subscriptions)
    spending = SpendingPolicies(sessions, pricing)
    changes.spending = spending
    billing = BillingService(
        sessions,
        ledger,
        pricing,
        alerts,
        export_base_url=settings.export_base_url,
        file_consent=settings.authenticated,
        clock=clock,
    )
    licences = LicenceService(sessions, partner_center, users, user_sync, idempotency)
    warnings = WarningService(
        sessions,
        subscriptions,
        changes,
        licences,
        pricing,
        alerts,
        jobs,
        catalog,
        clock=microsoft_now,
        interval=timedelta(minutes=settings.warnings_interval_minutes),
        check_seconds=settings.warnings_check_seconds,
    )
    ordering = OrderingService(sessions, catalog, pricing, partner_center, jobs, idempotency, ledger, alerts, clock)
    ordering.spending = spending
    return Services(
        engine=engine,
        spending=spending,
        sessions=sessions,
        organisations=organisations,
        access=access,
        alerts=alerts,
        conversations=ConversationReferenceService(sessions),
        activity_receipts=ActivityReceipts(sessions),
        idempotency=idempotency,
        jobs=jobs,
        partner_center=partner_center,
        clock=clock,
        secret_box=box,
        mailer=mailer,
        ledger=ledger,
        tenants=TenantService(
            sessions,
            organisations,
            partner_center,
            jobs,
            CredentialsMail(sessions, organisations, jobs, mailer, box, alerts),
            clock,
        ),
        user_sync=user_sync,
        users=users,
        licences=licences,
        directory=DirectoryService(sessions, users, idempotency, mailer),
        pricing=pricing,
        catalog=catalog,
        ordering=ordering,
        billing=billing,
        subscriptions=subscriptions,
        subscription_changes=changes,
        approvals=ApprovalService(sessions, changes, expiry=timedelta(hours=settings.approval_expiry_hours)),
        sent_cards=SentCardStore(sessions),
        warnings=warnings,
        outbound_hosts=OutboundHosts.from_settings(settings),
    )


def mail_transport(settings: Settings) -> MailTransport:
    if settings.mail_smtp_url.get_secret_value().strip():
        return smtp_transport_from_url(settings.mail_smtp_url.get_secret_value())
    if settings.smtp_host.strip():
        return SmtpTransport(
            settings.smtp_host.strip(),
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
        )
    return OutboxTransport(settings.mail_outbox_dir)


# --- Partner Center: refused credentials alert the operator ---------------------------------------

PARTNER_CENTER_AUTH_ALERT = "partner_center_auth"

_AUTH_ADVICE = {
    "app": (
        "Microsoft refused this app's Partner Center sign-in (PARTNER_CENTER_CLIENT_ID / "
        "PARTNER_CENTER_CLIENT_SECRET): the client secret may have expired or the app lost its permission. "
        "Customers, orders and subscriptions cannot be reached until it is fixed."
    ),
    "app_user": (
        "Microsoft refused the app+user sign-in (PARTNER_CENTER_REFRESH_TOKEN) or the permission behind it: "
        "the refresh token may have expired or been revoked, or the consenting admin or the customer's GDAP "
        "roles changed. Users, licences, agreements and the price sheet cannot be reached until it is renewed."
    ),
}


def partner_center_auth_alert(alerts: AlertService) -> Callable[[PartnerCenterAuthError, TokenKind], Awaitable[None]]:
    """The client's `on_auth_failure`: one open alert per sign-in kind (repeats count occurrences).
    The message names settings and ids only, never a token or secret."""

    async def raise_alert(error: PartnerCenterAuthError, kind: TokenKind) -> None:
        details = [f"HTTP {error.http_status}" if error.http_status else "at sign-in"]
        if error.request_id:
            details.append(f"MS-RequestId {error.request_id}")
        await alerts.raise_alert(
            PARTNER_CENTER_AUTH_ALERT,
            f"{_AUTH_ADVICE[kind]} ({', '.join(details)}). See docs/partner-center.md.",
            dedup_key=f"{PARTNER_CENTER_AUTH_ALERT}:{kind}",
            severity="error",
        )

    return raise_alert
