"""SQLAlchemy models of the foundation tables. The schema changes only through Alembic migrations.

No `from __future__ import annotations` here: with it, SQLAlchemy evaluates each `Mapped[...]` from its text
when the class is made (~800 evaluations, a sixth of this module's import time at every start); without it
only the relationships to classes defined further down are written as text."""

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.db import Base, UtcDateTime, utcnow


class Organisation(Base):
    """A customer organisation of the reseller: its company profile and its Teams tenant."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    teams_tenant_id: Mapped[str | None] = mapped_column(String(100), unique=True)
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2), default="")
    contact_first_name: Mapped[str] = mapped_column(String(100), default="")
    contact_last_name: Mapped[str] = mapped_column(String(100), default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    contact_phone: Mapped[str] = mapped_column(String(40), default="")
    culture: Mapped[str] = mapped_column(String(10), default="")
    language: Mapped[str] = mapped_column(String(10), default="")
    registration_number: Mapped[str] = mapped_column(String(64), default="")
    domain_prefix: Mapped[str] = mapped_column(String(27), default="")
    allow_self_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    # Microsoft's id of the organisation's tenant as a customer of the reseller (set by "add tenant"
    # or once a reseller relationship is accepted); everything sold is bought for it.
    partner_center_customer_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)

    members: Mapped[list["Member"]] = relationship(
        back_populates="organisation", cascade="all, delete-orphan", order_by="Member.id"
    )


class Member(Base):
    """A person of an organisation who may use the bot, registered by e-mail/UPN."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("organisation_id", "email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    # Channel ids are opaque text: the Playground's object ids are not GUIDs.
    aad_object_id: Mapped[str | None] = mapped_column(String(100), index=True)
    channel_user_id: Mapped[str | None] = mapped_column(String(200), index=True)
    # The language they read: their own choice (a CLDR locale, `nb`, `de_DE`; None follows Teams),
    # and the locale Teams sent with their last activity (for messages sent outside a turn).
    language: Mapped[str | None] = mapped_column(String(35))
    teams_locale: Mapped[str | None] = mapped_column(String(35))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    organisation: Mapped[Organisation] = relationship(back_populates="members")
    role_rows: Mapped[list["MemberRole"]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="MemberRole.role"
    )

    @property
    def roles(self) -> frozenset[str]:
        return frozenset(row.role for row in self.role_rows)


class MemberRole(Base):
    """One role of a member; the primary key makes the roles a set."""

    __tablename__ = "member_roles"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    role: Mapped[str] = mapped_column(String(20), primary_key=True)


class ConversationReferenceRow(Base):
    """Where the bot can write to later: a 1:1 chat, a group chat or a channel."""

    __tablename__ = "conversation_references"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(400), unique=True)
    conversation_type: Mapped[str] = mapped_column(String(20), default="personal")
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    reference: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SentCardRow(Base):
    """A task's card posted into a conversation, so a later click on it is understood: which task it
    belongs to, whether it was acted on, and the message to update once it no longer takes clicks."""

    __tablename__ = "sent_cards"
    __table_args__ = (
        UniqueConstraint("conversation_id", "card_id"),
        Index("ix_sent_cards_conversation_task_status", "conversation_id", "task", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(400))
    card_id: Mapped[str] = mapped_column(String(40))
    activity_id: Mapped[str] = mapped_column(String(200))  # the channel's message id
    task: Mapped[str] = mapped_column(String(80))  # the dialog id of the task that posted it
    card: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default="live")  # live | replaced | done | closed
    outcome: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class AuditEntry(Base):
    """Who changed what, when, with the state before and after."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(80))
    target: Mapped[str] = mapped_column(String(200), default="")
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    correlation_id: Mapped[str] = mapped_column(String(64), default="")


class IdempotencyKey(Base):
    """A key stored before a side effect, so a repeat finds what the first attempt created."""

    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    purpose: Mapped[str] = mapped_column(String(80))
    resource_type: Mapped[str] = mapped_column(String(40), default="")
    resource_id: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Job(Base):
    """Durable work that may outlast a turn; claimed by one runner at a time through a lease."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(80), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    requested_by: Mapped[str] = mapped_column(String(254), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    run_after: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_message: Mapped[str] = mapped_column(Text, default="")
    notify_conversation_id: Mapped[str | None] = mapped_column(String(400))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Set once the requester was told the outcome; a finished job without it is told again.
    notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Alert(Base):
    """Something that needs a person; one open alert per dedup key, counted when raised again."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(60), index=True)
    severity: Mapped[str] = mapped_column(String(10), default="warning")
    dedup_key: Mapped[str] = mapped_column(String(200), index=True)
    message: Mapped[str] = mapped_column(Text)
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    acknowledged_by: Mapped[str] = mapped_column(String(254), default="")
    acknowledged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ActivityReceipt(Base):
    """An activity the bot has taken on, keyed by a digest of (channel, conversation, activity id):
    a re-delivery of it finds the row and is dropped. Kept for a day, then swept."""

    __tablename__ = "activity_receipts"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class BotStateRow(Base):
    """The bot framework's state (dialog stacks) as JSON, with a version for optimistic concurrency."""

    __tablename__ = "bot_state"

    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    data: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SubscriptionRow(Base):
    """The bot's mirror of one of Microsoft's subscriptions (written only after Microsoft accepted a
    change, or by a sync). Current state only; the history that billing reads is the ledger."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # Microsoft's subscription id
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    customer_id: Mapped[str] = mapped_column(String(64), index=True)
    parent_subscription_id: Mapped[str | None] = mapped_column(String(64), index=True)
    offer_id: Mapped[str] = mapped_column(String(120))  # product:sku:availability
    product_id: Mapped[str] = mapped_column(String(40))
    sku_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    # The licence product (subscribed SKU id) its seats are pooled in; empty when it grants none.
    licence_sku_id: Mapped[str] = mapped_column(String(64), default="")
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    term_duration: Mapped[str] = mapped_column(String(10))
    billing_cycle: Mapped[str] = mapped_column(String(20))
    auto_renew: Mapped[bool] = mapped_column(Boolean, default=True)
    commitment_end_date: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancellation_allowed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Microsoft's `refundableQuantity` as last seen: {"totalQuantity": n, "details": [...]}.
    refundable: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    scheduled_quantity: Mapped[int | None] = mapped_column(Integer)
    # The term and billing frequency scheduled for the renewal (None: it renews with its own).
    scheduled_term_duration: Mapped[str | None] = mapped_column(String(10))
    scheduled_billing_cycle: Mapped[str | None] = mapped_column(String(20))
    etag: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LedgerEntry(Base):
    """One event in a subscription's life, as billing needs it: never updated, never deleted.

    `source_key` makes recording idempotent: the same order, change or audit record is written once
    however often it is seen (a re-delivered activity, a retried job, a second sync)."""

    __tablename__ = "subscription_ledger"
    __table_args__ = (Index("ix_subscription_ledger_org_effective", "organisation_id", "effective_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    subscription_id: Mapped[str] = mapped_column(String(64), index=True)
    parent_subscription_id: Mapped[str | None] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(30))
    effective_at: Mapped[datetime] = mapped_column(UtcDateTime)
    offer_id: Mapped[str] = mapped_column(String(120))
    product_id: Mapped[str] = mapped_column(String(40))
    sku_id: Mapped[str] = mapped_column(String(40))
    product_name: Mapped[str] = mapped_column(String(200))
    term_duration: Mapped[str] = mapped_column(String(10))
    billing_cycle: Mapped[str] = mapped_column(String(20))
    quantity_before: Mapped[int] = mapped_column(Integer)
    quantity_after: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(20))  # "bot" or "sync"
    source_key: Mapped[str] = mapped_column(String(200), unique=True)
    actor: Mapped[str] = mapped_column(String(254), default="")
    # The price-list entry shown to the customer when they bought or changed it (informational;
    # rating looks the price up again by the rules, so a corrected list is honoured).
    price_entry_id: Mapped[int | None] = mapped_column(Integer)
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# --- Catalog cache and price lists ---------------------------------------------------------------
# Imported here, not at the top, so parallel features appending their own sections merge cleanly.
from sqlalchemy import ForeignKeyConstraint  # noqa: E402


class CatalogProduct(Base):
    """A product of Microsoft's catalog as last synced, with its place in our taxonomy (Partner
    Center has no product groups: `category`/`product_group` come from the taxonomy)."""

    __tablename__ = "catalog_products"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # Microsoft's product id
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[str] = mapped_column(String(80), index=True)
    product_group: Mapped[str] = mapped_column(String(80))
    # "operator" (edited), "default" (the shipped mapping) or "unmapped" (landed in Other).
    taxonomy_source: Mapped[str] = mapped_column(String(20), default="default")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CatalogSku(Base):
    """A SKU of a product: quantity bounds, the licence SKU its seats are pooled in, add-on flag."""

    __tablename__ = "catalog_skus"

    product_id: Mapped[str] = mapped_column(ForeignKey("catalog_products.id", ondelete="CASCADE"), primary_key=True)
    sku_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    minimum_quantity: Mapped[int] = mapped_column(Integer, default=1)
    maximum_quantity: Mapped[int] = mapped_column(Integer, default=1)
    # Microsoft's `dynamicAttributes.provisioningId`: the subscribed SKU id licences are pooled in.
    licence_sku_id: Mapped[str] = mapped_column(String(64), default="", index=True)
    is_addon: Mapped[bool] = mapped_column(Boolean, default=False)
    has_addons: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class CatalogTerm(Base):
    """A term and billing frequency a SKU can be bought with (from its availabilities; the
    availability id itself rotates and is fetched again at purchase, never stored as a key)."""

    __tablename__ = "catalog_terms"
    __table_args__ = (
        ForeignKeyConstraint(
            ["product_id", "sku_id"], ["catalog_skus.product_id", "catalog_skus.sku_id"], ondelete="CASCADE"
        ),
    )

    product_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sku_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    term_duration: Mapped[str] = mapped_column(String(10), primary_key=True)
    billing_cycle: Mapped[str] = mapped_column(String(20), primary_key=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    currency: Mapped[str] = mapped_column(String(3), default="")


class CatalogAddonBase(Base):
    """An add-on SKU and a base SKU it can be bought for (Microsoft's `prerequisiteSkus`)."""

    __tablename__ = "catalog_addon_bases"

    addon_product_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    addon_sku_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    base_product_id: Mapped[str] = mapped_column(String(40), primary_key=True, index=True)
    base_sku_id: Mapped[str] = mapped_column(String(40), primary_key=True)


class CatalogTaxonomyRow(Base):
    """The operator's placement of a product (overrides the shipped default mapping)."""

    __tablename__ = "catalog_taxonomy"

    product_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    category: Mapped[str] = mapped_column(String(80))
    product_group: Mapped[str] = mapped_column(String(80))
    updated_by: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class PriceList(Base):
    """A reseller price list: the one global list (name "global") or a customer-specific one."""

    __tablename__ = "price_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    is_global: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(String(400), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class PriceEntryRow(Base):
    """One price: product/SKU, term, billing frequency, currency, amount per seat per billing
    period, validity (inclusive). The amount is kept as decimal text, exact on every backend."""

    __tablename__ = "price_entries"
    __table_args__ = (
        UniqueConstraint(
            "price_list_id", "product_id", "sku_id", "term_duration", "billing_cycle", "valid_from", name="uq_price_key"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    price_list_id: Mapped[int] = mapped_column(ForeignKey("price_lists.id", ondelete="CASCADE"), index=True)
    product_id: Mapped[str] = mapped_column(String(40))
    sku_id: Mapped[str] = mapped_column(String(40))
    term_duration: Mapped[str] = mapped_column(String(10))
    billing_cycle: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[str] = mapped_column(String(40))
    valid_from: Mapped[date] = mapped_column(Date)
    valid_to: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class PriceListAssignment(Base):
    """The customer-specific list of an organisation (at most one; none = global prices only)."""

    __tablename__ = "price_list_assignments"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    price_list_id: Mapped[int] = mapped_column(ForeignKey("price_lists.id", ondelete="CASCADE"), index=True)
    assigned_by: Mapped[str] = mapped_column(String(254), default="")
    assigned_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# --- Tenants (add tenant / link tenant / My services) -----------------------------------------


class TenantServiceRow(Base):
    """The organisation's Microsoft 365 service: its tenant as a customer of the reseller.

    One row per organisation (the unique key is what makes "add tenant" exactly-once): it is
    inserted as `creating` before the durable job asks Microsoft, becomes `active` once Microsoft
    created (or the customer's admin linked) the tenant, and is deleted again if Microsoft refused.
    `credentials_password` holds the first admin's password, sealed (`services/sealed_secrets.py`),
    only until the e-mail carrying it is delivered (a mail server that is down must not lose it); it
    is never shown or logged."""

    __tablename__ = "tenant_services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(20))  # creating | active
    origin: Mapped[str] = mapped_column(String(10))  # created | linked
    customer_id: Mapped[str | None] = mapped_column(String(64))
    domain: Mapped[str] = mapped_column(String(255), default="")
    job_key: Mapped[str] = mapped_column(String(200), default="")
    requested_by: Mapped[str] = mapped_column(String(254), default="")
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    admin_user: Mapped[str] = mapped_column(String(254), default="")
    contact_email: Mapped[str] = mapped_column(String(254), default="")
    credentials_status: Mapped[str] = mapped_column(String(20), default="")  # pending | queued | sent | ...
    credentials_password: Mapped[str | None] = mapped_column(Text)
    credentials_sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    mca_name: Mapped[str] = mapped_column(String(200), default="")
    mca_email: Mapped[str] = mapped_column(String(254), default="")
    mca_accepted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- Users and licences ------------------------------------------------------------------------


class TenantUser(Base):
    """The synced copy of one user of the organisation's Microsoft tenant (Microsoft's object id).

    `licence_sku_ids` are the licence SKU GUIDs the user holds as last seen (our own changes, the
    user's own licences fetched when opened, audit records of changes made elsewhere)."""

    __tablename__ = "tenant_users"
    __table_args__ = (
        UniqueConstraint("organisation_id", "user_id", name="uq_tenant_users_org_user"),
        Index("ix_tenant_users_org_name", "organisation_id", "display_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    user_principal_name: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    display_name: Mapped[str] = mapped_column(String(256), default="")
    usage_location: Mapped[str] = mapped_column(String(2), default="")
    state: Mapped[str] = mapped_column(String(20), default="active")
    licence_sku_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    licences_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Microsoft's last sign-in of the user (Graph's signInActivity), None when unknown.
    last_sign_in_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The sync run that last saw this user in Microsoft's listing (mark and sweep).
    seen_generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LicencePool(Base):
    """Microsoft's per-licence-SKU pool in the tenant (subscribed SKUs): units and consumed units."""

    __tablename__ = "licence_pools"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    licence_sku_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    sku_part_number: Mapped[str] = mapped_column(String(100), default="")
    target_type: Mapped[str] = mapped_column(String(20), default="User")
    active_units: Mapped[int] = mapped_column(Integer, default=0)
    suspended_units: Mapped[int] = mapped_column(Integer, default=0)
    warning_units: Mapped[int] = mapped_column(Integer, default=0)
    consumed_units: Mapped[int] = mapped_column(Integer, default=0)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class UserSyncState(Base):
    """Per organisation: how fresh the users copy is, and where an interrupted listing resumes."""

    __tablename__ = "user_sync_states"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    # `links.next` of the last page stored by a run that did not finish (None: start afresh).
    resume_link: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Microsoft's time of the newest audit record read (licence changes made elsewhere).
    audit_cursor: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")


class SyncLease(Base):
    """A named lease: only its owner runs that work until it expires (one replica at a time)."""

    __tablename__ = "sync_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DirectoryUser(Base):
    """A person in the organisation's own user directory (kept by the bot, loaded from CSV or exported
    from the tenant). The directory password is stored only as a scrypt hash."""

    __tablename__ = "directory_users"
    __table_args__ = (UniqueConstraint("organisation_id", "email", name="uq_directory_users_org_email"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    first_name: Mapped[str] = mapped_column(String(100), default="")
    last_name: Mapped[str] = mapped_column(String(100), default="")
    display_name: Mapped[str] = mapped_column(String(256), default="")
    user_name: Mapped[str] = mapped_column(String(64), default="")
    usage_location: Mapped[str] = mapped_column(String(2), default="")
    tenant_user_id: Mapped[str | None] = mapped_column(String(64))
    password_hash: Mapped[str | None] = mapped_column(String(300))
    password_set_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


# ---- Billing -------------------------------------------------------------------------------


class BillingSettingRow(Base):
    """The reseller's cycle-end day and time zone, from an effective date on (never edited: a new
    row takes effect for the cycles that start on or after its date, so history is never re-cut)."""

    __tablename__ = "billing_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    effective_from: Mapped[date] = mapped_column(Date, index=True)
    cycle_day: Mapped[int | None] = mapped_column(Integer)  # None = the last day of the month
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    actor: Mapped[str] = mapped_column(String(254), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BillingReportRow(Base):
    """An issued report of an ended cycle: stored once, never rewritten."""

    __tablename__ = "billing_reports"
    __table_args__ = (UniqueConstraint("organisation_id", "cycle_end"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    cycle_start: Mapped[date] = mapped_column(Date)
    cycle_end: Mapped[date] = mapped_column(Date)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # What the report was rated from (ledger extent + price entries): when nothing changed since the
    # latest issued report, no earlier cycle can need an adjustment and none is re-rated.
    inputs_fingerprint: Mapped[str] = mapped_column(String(64), default="")

    lines: Mapped[list["BillingReportLineRow"]] = relationship(
        back_populates="report", cascade="all, delete-orphan", order_by="BillingReportLineRow.position"
    )


class BillingReportLineRow(Base):
    """One line of an issued report. Money is stored as decimal text: exact on SQLite and PostgreSQL."""

    __tablename__ = "billing_report_lines"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    report_id: Mapped[int] = mapped_column(ForeignKey("billing_reports.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    subscription_id: Mapped[str] = mapped_column(String(64))
    parent_subscription_id: Mapped[str | None] = mapped_column(String(64))
    product: Mapped[str] = mapped_column(String(200))
    offer_id: Mapped[str] = mapped_column(String(120))
    product_id: Mapped[str] = mapped_column(String(40))
    sku_id: Mapped[str] = mapped_column(String(40))
    term_duration: Mapped[str] = mapped_column(String(10))
    billing_cycle: Mapped[str] = mapped_column(String(20))
    charge_type: Mapped[str] = mapped_column(String(30))
    charge_day: Mapped[date] = mapped_column(Date)
    quantity: Mapped[int] = mapped_column(Integer)
    unit_price: Mapped[str | None] = mapped_column(String(40))
    days: Mapped[int | None] = mapped_column(Integer)
    cycle_days: Mapped[int | None] = mapped_column(Integer)
    amount: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3), default="")
    price_entry_id: Mapped[int | None] = mapped_column(Integer)
    corrects_cycle_end: Mapped[date | None] = mapped_column(Date)

    report: Mapped[BillingReportRow] = relationship(back_populates="lines")


class BillingExportRow(Base):
    """A signed, single-use download link for an export (stored by the hash of its token)."""

    __tablename__ = "billing_exports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(254))
    file_format: Mapped[str] = mapped_column(String(8))
    first_month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    last_month: Mapped[str] = mapped_column(String(7))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# --- Subscriptions management and approvals ------------------------------------------------------


class Approval(Base):
    """A request that needs an approver (a suspension): who asked, what, why, when, until when, and
    who decided when. `status` moves only by conditional UPDATEs, so a request is decided once."""

    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30), default="suspend")
    subscription_id: Mapped[str] = mapped_column(String(64), index=True)
    subscription_name: Mapped[str] = mapped_column(String(200), default="")
    requested_by_member_id: Mapped[int | None] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(254))
    requester_name: Mapped[str] = mapped_column(String(200), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    # pending -> suspending -> suspended | failed (-> suspending on retry); pending -> rejected | expired
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by_member_id: Mapped[int | None] = mapped_column(Integer)
    decided_by: Mapped[str] = mapped_column(String(254), default="")
    decider_name: Mapped[str] = mapped_column(String(200), default="")
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str] = mapped_column(Text, default="")
    # Where the approval card was posted: [{"conversation_id": ..., "activity_id": ...}].
    posts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # A spending request (kind "purchase" / "seats"): what runs on approval (the quote or the new
    # quantity, with its order key) and the organisation's policy when it was asked.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class SpendingPolicy(Base):
    """When spending needs an approver (set by the operator): a monthly-cost threshold for one
    purchase or seat increase, whether a yearly or 3-year commitment always does, and a yearly
    spending limit. Amounts are decimal text in `currency`; empty means no threshold or limit."""

    __tablename__ = "spending_policies"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    monthly_threshold: Mapped[str] = mapped_column(String(40), default="")
    commitments_need_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    annual_limit: Mapped[str] = mapped_column(String(40), default="")
    updated_by: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class ApprovalChannel(Base):
    """The channel (a stored conversation) where an organisation's approval cards are also posted."""

    __tablename__ = "approval_channels"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(400))
    set_by: Mapped[str] = mapped_column(String(254), default="")
    set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class SubscriptionSyncState(Base):
    """Per organisation: when its subscriptions were last synced from Partner Center, and the time of
    the last audit record read (where the next sync starts reading)."""

    __tablename__ = "subscription_sync_state"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    audit_cursor: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- Mail outbox: every e-mail recorded, retried until delivered ---------------------------------


class MailMessage(Base):
    """One outgoing e-mail. `secrets` (e.g. a password for the body's `{password}` placeholder) are
    kept sealed (`services/sealed_secrets.py`) and only until the message is delivered, then
    removed; the row stays as the record."""

    __tablename__ = "mail_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int | None] = mapped_column(Integer, index=True)
    to_address: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(400))
    body_text: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    secrets: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    status: Mapped[str] = mapped_column(String(20), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


# --- Warnings before money is locked in ----------------------------------------------


class WarningSettingRow(Base):
    """An organisation's warning settings (no row: the defaults)."""

    __tablename__ = "warning_settings"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    enabled: Mapped[list[str]] = mapped_column(JSON, default=list)
    renewal_lead_days: Mapped[list[int]] = mapped_column(JSON, default=list)
    seat_window_hours: Mapped[int] = mapped_column(Integer, default=48)
    idle_days: Mapped[int] = mapped_column(Integer, default=30)
    excluded_skus: Mapped[list[str]] = mapped_column(JSON, default=list)
    quiet_start: Mapped[int | None] = mapped_column(Integer)
    quiet_end: Mapped[int | None] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    # The organisation channel (a stored conversation) where warnings are also posted; set by the operator.
    channel_conversation_id: Mapped[str | None] = mapped_column(String(400))
    updated_by: Mapped[str] = mapped_column(String(254), default="")
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class LicenceOverviewRow(Base):
    """The monthly licence overview of an organisation: claimed once per (organisation, month) before
    it is sent, and kept as last month's figures for the next one."""

    __tablename__ = "licence_overviews"
    __table_args__ = (UniqueConstraint("organisation_id", "month"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM: the billing cycle that ended
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sent_to: Mapped[list[int]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DeliveryClaim(Base):
    """A warning or a monthly overview claimed for one recipient (a member id, or `channel`) before it
    is posted: the primary key lets one pass, replica or turn post it, however many run at once. A post
    Teams did not take gives its claim back, so the next pass tries again."""

    __tablename__ = "delivery_claims"

    kind: Mapped[str] = mapped_column(String(20), primary_key=True)  # warning | overview
    ref_id: Mapped[int] = mapped_column(Integer, primary_key=True)  # the notice's or the overview's id
    recipient: Mapped[str] = mapped_column(String(40), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class WarningNotice(Base):
    """One warning, claimed once by its key (organisation, kind, subject, window) before it is sent:
    who it reached, where its cards are, and what was done from them."""

    __tablename__ = "warning_notices"
    __table_args__ = (UniqueConstraint("organisation_id", "kind", "subject", "window"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    subject: Mapped[str] = mapped_column(String(64))
    window: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # pending (claimed, not delivered yet) | sent | acted | expired (its moment passed undelivered)
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    sent_to: Mapped[list[int]] = mapped_column(JSON, default=list)  # member ids reached
    posts: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [{conversation_id, activity_id, member_id}]
    outcome: Mapped[str] = mapped_column(String(300), default="")
    acted_by: Mapped[str] = mapped_column(String(254), default="")
    acted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class LicenceIdleRow(Base):
    """How long seats of a licence product have stayed unassigned, as the warnings passes saw it:
    layers of (seats, since) — see `services.warnings.rules.track_idle`."""

    __tablename__ = "licence_idle"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    licence_sku_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    layers: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
