"""ChatOps: the chat threads alertsleuth posted an incident's notice in (`chat_threads`), the silences
it created (`silences`), runbook actions through dry run, approval and run (`runbook_actions`), and the
append-only audit trail (`audit_events`, whose UPDATE and DELETE triggers refuse on both backends).

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

Id = sa.Integer().with_variant(sa.BigInteger(), "postgresql")
When = sa.DateTime()  # naive UTC, as models.py UTCDateTime stores it


def Str(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(sa.Text(), "postgresql")


APPEND_ONLY = "audit_events is append-only"


def upgrade() -> None:
    op.create_table(
        "chat_threads",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("platform", Str(16), nullable=False),
        sa.Column("channel", Str(255), nullable=False),
        sa.Column("thread", Str(255), nullable=False),
        sa.Column("sink", Str(64), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("platform", "channel", "thread", name="uq_chat_thread"),
    )
    op.create_index("ix_chat_threads_incident_id", "chat_threads", ["incident_id"])
    op.create_table(
        "silences",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("silence_id", Str(64), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", When, nullable=False),
        sa.Column("ends_at", When, nullable=False),
        sa.Column("created_by", Str(255), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("expired_at", When, nullable=True),
        sa.Column("expired_by", Str(255), nullable=True),
    )
    op.create_index("ix_silences_incident_id", "silences", ["incident_id"])
    op.create_index("ix_silences_silence_id", "silences", ["silence_id"])
    op.create_table(
        "runbook_actions",
        sa.Column("id", Id, primary_key=True),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=False),
        sa.Column("runbook", Str(128), nullable=False),
        sa.Column("state", Str(16), nullable=False),
        sa.Column("requested_by", Str(255), nullable=False),
        sa.Column("reply_to", sa.JSON(), nullable=False),
        sa.Column("approved_by", Str(255), nullable=True),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("variables_digest", Str(64), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("dry_run", sa.JSON(), nullable=True),
        sa.Column("run", sa.JSON(), nullable=True),
        sa.Column("created_at", When, nullable=False),
        sa.Column("updated_at", When, nullable=False),
    )
    op.create_index("ix_runbook_actions_incident_id", "runbook_actions", ["incident_id"])
    op.create_index("ix_runbook_actions_state", "runbook_actions", ["state"])
    op.create_table(
        "audit_events",
        sa.Column("id", Id, primary_key=True),
        sa.Column("at", When, nullable=False),
        sa.Column("incident_id", Id, sa.ForeignKey("incidents.id"), nullable=True),
        sa.Column("action_id", Id, sa.ForeignKey("runbook_actions.id"), nullable=True),
        sa.Column("actor", Str(255), nullable=False),
        sa.Column("via", Str(64), nullable=False),
        sa.Column("kind", Str(32), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_events_incident_id", "audit_events", ["incident_id"])
    op.create_index("ix_audit_events_action_id", "audit_events", ["action_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )
    else:
        for what in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{what.lower()} BEFORE {what} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION audit_events_append_only()")
    op.drop_table("audit_events")
    op.drop_table("runbook_actions")
    op.drop_table("silences")
    op.drop_table("chat_threads")
