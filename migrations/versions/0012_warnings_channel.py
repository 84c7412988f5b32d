"""Warnings: the organisation channel where they are also posted (set by the operator).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("warning_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel_conversation_id", sa.String(length=400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("warning_settings", schema=None) as batch_op:
        batch_op.drop_column("channel_conversation_id")
