"""ChatOps: the inbound chat events already taken (`chat_events`), so that a platform's retry of one is
dropped by whichever replica it reaches (they were remembered in each process's memory).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

When = sa.DateTime()  # naive UTC, as models.py UTCDateTime stores it


def Str(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.Text(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "chat_events",
        sa.Column("platform", Str(16), primary_key=True),
        sa.Column("event_id", Str(255), primary_key=True),
        sa.Column("received_at", When, nullable=False),
    )
    op.create_index("ix_chat_events_received_at", "chat_events", ["received_at"])


def downgrade() -> None:
    op.drop_table("chat_events")
