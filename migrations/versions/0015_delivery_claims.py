"""Delivery claims: a warning or a monthly overview is claimed for one recipient before it is
posted, so two passes (or a pass and a member's first hello) running at once post it once.

Revision ID: 0015_delivery_claims
Revises: 0014_i18n
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_delivery_claims"
down_revision: str | None = "0014_i18n"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_claims",
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ref_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=40), nullable=False),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("kind", "ref_id", "recipient"),
    )


def downgrade() -> None:
    op.drop_table("delivery_claims")
