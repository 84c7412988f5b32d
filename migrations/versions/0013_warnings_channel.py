"""Warnings: the organisation channel where they are also posted (set by the operator), and the
monthly licence overviews (one per organisation and month), and the term and billing frequency a
subscription has scheduled for its renewal.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("warning_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_conversation_id", sa.String(length=400), nullable=True))
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("scheduled_term_duration", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("scheduled_billing_cycle", sa.String(length=20), nullable=True))
    op.create_table(
        "licence_overviews",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("organisation_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("facts", sa.JSON(), nullable=False),
        sa.Column("sent_to", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"],
            ["organisations.id"],
            name=op.f("fk_licence_overviews_organisation_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_licence_overviews")),
        sa.UniqueConstraint("organisation_id", "month", name=op.f("uq_licence_overviews_organisation_id")),
    )
    with op.batch_alter_table("licence_overviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_licence_overviews_organisation_id"), ["organisation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("licence_overviews", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_licence_overviews_organisation_id"))
    op.drop_table("licence_overviews")
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("scheduled_billing_cycle")
        batch_op.drop_column("scheduled_term_duration")
    with op.batch_alter_table("warning_settings", schema=None) as batch_op:
        batch_op.drop_column("channel_conversation_id")
