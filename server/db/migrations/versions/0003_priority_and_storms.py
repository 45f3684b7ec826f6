"""Investigations by severity, and alert storms investigated once.

- jobs get a priority (an alert's severity: server/db/jobs.py `priority_of`) and the index of the
  claim's order (state, priority, id); jobs queued before get the default, 2 (with the warnings);
- incidents get `storm_key` (the rule and group: server/db/storms.py `storm_key`; null for those made
  before, which are investigated alone) and `storm_lead_id`, jobs `lead_job_id`.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.Integer().with_variant(sa.BigInteger(), "postgresql")


def _add_reference(table: str, column: str, target: str) -> None:
    """A nullable id column referring to `target`'s ids. On SQLite, ALTER TABLE ADD COLUMN takes the
    reference as it is (a batch would copy the table, which its foreign keys refuse to drop)."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER REFERENCES {target} (id)")
    else:
        op.add_column(table, sa.Column(column, Id, sa.ForeignKey(f"{target}.id"), nullable=True))


def upgrade() -> None:
    op.add_column("jobs", sa.Column("priority", sa.Integer(), nullable=False, server_default="2"))
    _add_reference("jobs", "lead_job_id", "jobs")
    op.create_index("ix_jobs_due", "jobs", ["state", "priority", "id"])
    op.create_index("ix_jobs_lead_job_id", "jobs", ["lead_job_id"])
    op.add_column("incidents", sa.Column("storm_key", sa.String(32).with_variant(sa.Text(), "postgresql")))
    _add_reference("incidents", "storm_lead_id", "incidents")
    op.create_index("ix_incidents_storm_key", "incidents", ["storm_key"])
    op.create_index("ix_incidents_storm_lead_id", "incidents", ["storm_lead_id"])


def downgrade() -> None:
    op.drop_index("ix_incidents_storm_lead_id", table_name="incidents")
    op.drop_index("ix_incidents_storm_key", table_name="incidents")
    op.drop_column("incidents", "storm_lead_id")
    op.drop_column("incidents", "storm_key")
    op.drop_index("ix_jobs_lead_job_id", table_name="jobs")
    op.drop_index("ix_jobs_due", table_name="jobs")
    op.drop_column("jobs", "lead_job_id")
    op.drop_column("jobs", "priority")
