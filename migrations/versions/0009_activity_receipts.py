"""Receipts of the activities the bot has taken on (a re-delivered activity is dropped), and the
conversation references of callers who were no member (never used: no longer stored) removed.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 20:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "activity_receipts",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_activity_receipts")),
    )
    with op.batch_alter_table("activity_receipts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_activity_receipts_received_at"), ["received_at"], unique=False)
    # A member's conversation always carries the organisation; these rows came from strangers.
    op.execute("DELETE FROM conversation_references WHERE organisation_id IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("activity_receipts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_activity_receipts_received_at"))

    op.drop_table("activity_receipts")
