"""How each ticket was closed: `tickets.closed_at` and `tickets.closing_comment`, written when a ticket
sink's resolution delivery succeeds (the comment it posted: `server/delivery/message.py`
`resolved_line`), and shown with the incident among the incidents seen before. Tickets closed before
this revision have neither.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UTCDateTime = sa.DateTime()  # naive UTC, as models.py UTCDateTime stores it


def upgrade() -> None:
    op.add_column("tickets", sa.Column("closed_at", UTCDateTime, nullable=True))
    op.add_column("tickets", sa.Column("closing_comment", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.drop_column("closing_comment")
        batch.drop_column("closed_at")
