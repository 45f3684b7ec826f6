"""The schema of release 0.1, the last release without migrations (frozen in ../release_0_1.py).

A database that release made is stamped with this revision instead (server/db/migrate.py).

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from alembic import op

from server.db.migrations import release_0_1

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    release_0_1.create(op.get_bind())


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS report_search")
    release_0_1.metadata.drop_all(op.get_bind())
