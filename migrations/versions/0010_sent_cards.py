"""Sent cards: a task's cards in a conversation, to answer a click on an old card truthfully and to
turn an acted-on card into a read-only record in place.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sent_cards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conversation_id", sa.String(length=400), nullable=False),
        sa.Column("card_id", sa.String(length=40), nullable=False),
        sa.Column("activity_id", sa.String(length=200), nullable=False),
        sa.Column("task", sa.String(length=80), nullable=False),
        sa.Column("card", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("outcome", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sent_cards")),
        sa.UniqueConstraint("conversation_id", "card_id", name=op.f("uq_sent_cards_conversation_id")),
    )
    with op.batch_alter_table("sent_cards", schema=None) as batch_op:
        batch_op.create_index("ix_sent_cards_conversation_task_status", ["conversation_id", "task", "status"])
        batch_op.create_index(batch_op.f("ix_sent_cards_created_at"), ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sent_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sent_cards_created_at"))
        batch_op.drop_index("ix_sent_cards_conversation_task_status")
    op.drop_table("sent_cards")
