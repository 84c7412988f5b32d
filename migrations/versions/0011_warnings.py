"""Warnings before money is locked in: an organisation's warning settings, each warning claimed once
by its key, how long licences stayed unassigned, and users' last sign-in.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "warning_settings",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.JSON(), nullable=False),
        sa.Column("renewal_lead_days", sa.JSON(), nullable=False),
        sa.Column("seat_window_hours", sa.Integer(), nullable=False),
        sa.Column("idle_days", sa.Integer(), nullable=False),
        sa.Column("excluded_skus", sa.JSON(), nullable=False),
        sa.Column("quiet_start", sa.Integer(), nullable=True),
        sa.Column("quiet_end", sa.Integer(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("updated_by", sa.String(length=254), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_warning_settings_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", name=op.f("pk_warning_settings")),
    )
    op.create_table(
        "warning_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("window", sa.String(length=64), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("sent_to", sa.JSON(), nullable=False),
        sa.Column("posts", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=300), nullable=False),
        sa.Column("acted_by", sa.String(length=254), nullable=False),
        sa.Column("acted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_warning_notices_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_warning_notices")),
        sa.UniqueConstraint(
            "organisation_id", "kind", "subject", "window", name=op.f("uq_warning_notices_organisation_id")
        ),
    )
    with op.batch_alter_table("warning_notices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_warning_notices_organisation_id"), ["organisation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_warning_notices_status"), ["status"], unique=False)
    op.create_table(
        "licence_idle",
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("licence_sku_id", sa.String(length=64), nullable=False),
        sa.Column("layers", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_licence_idle_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organisation_id", "licence_sku_id", name=op.f("pk_licence_idle")),
    )
    with op.batch_alter_table("tenant_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenant_users", schema=None) as batch_op:
        batch_op.drop_column("last_sign_in_at")
    op.drop_table("licence_idle")
    with op.batch_alter_table("warning_notices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_warning_notices_status"))
        batch_op.drop_index(batch_op.f("ix_warning_notices_organisation_id"))
    op.drop_table("warning_notices")
    op.drop_table("warning_settings")
