"""The subscriptions mirror, the subscription ledger, and the Partner Center customer id of an organisation.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 01:25:22.226529
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscription_ledger",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.String(length=64), nullable=False),
        sa.Column("parent_subscription_id", sa.String(length=64), nullable=True),
        sa.Column("event_type", sa.String(length=30), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offer_id", sa.String(length=120), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("sku_id", sa.String(length=40), nullable=False),
        sa.Column("product_name", sa.String(length=200), nullable=False),
        sa.Column("term_duration", sa.String(length=10), nullable=False),
        sa.Column("billing_cycle", sa.String(length=20), nullable=False),
        sa.Column("quantity_before", sa.Integer(), nullable=False),
        sa.Column("quantity_after", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("source_key", sa.String(length=200), nullable=False),
        sa.Column("actor", sa.String(length=254), nullable=False),
        sa.Column("price_entry_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_subscription_ledger_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_ledger")),
        sa.UniqueConstraint("source_key", name=op.f("uq_subscription_ledger_source_key")),
    )
    with op.batch_alter_table("subscription_ledger", schema=None) as batch_op:
        batch_op.create_index("ix_subscription_ledger_org_effective", ["organisation_id", "effective_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscription_ledger_subscription_id"), ["subscription_id"], unique=False)

    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=False),
        sa.Column("parent_subscription_id", sa.String(length=64), nullable=True),
        sa.Column("offer_id", sa.String(length=120), nullable=False),
        sa.Column("product_id", sa.String(length=40), nullable=False),
        sa.Column("sku_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("licence_sku_id", sa.String(length=64), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("term_duration", sa.String(length=10), nullable=False),
        sa.Column("billing_cycle", sa.String(length=20), nullable=False),
        sa.Column("auto_renew", sa.Boolean(), nullable=False),
        sa.Column("commitment_end_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancellation_allowed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refundable", sa.JSON(), nullable=False),
        sa.Column("scheduled_quantity", sa.Integer(), nullable=True),
        sa.Column("etag", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_subscriptions_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_subscriptions_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_subscriptions_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_subscriptions_parent_subscription_id"), ["parent_subscription_id"], unique=False
        )

    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("partner_center_customer_id", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint(
            batch_op.f("uq_organisations_partner_center_customer_id"), ["partner_center_customer_id"]
        )


def downgrade() -> None:
    with op.batch_alter_table("organisations", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_organisations_partner_center_customer_id"), type_="unique")
        batch_op.drop_column("partner_center_customer_id")

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_parent_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_organisation_id"))
        batch_op.drop_index(batch_op.f("ix_subscriptions_customer_id"))

    op.drop_table("subscriptions")
    with op.batch_alter_table("subscription_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscription_ledger_subscription_id"))
        batch_op.drop_index("ix_subscription_ledger_org_effective")

    op.drop_table("subscription_ledger")
