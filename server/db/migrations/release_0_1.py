"""The schema of release 0.1, the last one without migrations, frozen: what its start-up made with
`Base.metadata.create_all` and `create_search_table`. Never edit it: databases out there hold it.

`create(conn)` makes it, in revision 0001. With `checkfirst`, only the tables that are missing, as that
release's start-up did each time: a database of 0.1 (or of an earlier build, without
`notification_incidents`, say) is brought to the full 0.1 schema this way before it is stamped 0001
(server/db/migrate.py).

The full-text table `report_search`, by backend: on SQLite an FTS5 virtual table (a plain table where the
FTS5 module is missing); elsewhere a plain table, on PostgreSQL with a GIN index on
`to_tsvector('simple', body)` (replaced in revision 0002).
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
)
from sqlalchemy.exc import OperationalError

metadata = MetaData()

Table(
    "notifications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("received_at", DateTime, nullable=False),
    Column("source", String(32), nullable=False),
    Column("group_key", Text, nullable=False),
    Column("alerts", Integer, nullable=False),
    Column("body", Text, nullable=False),
)
Table(
    "incidents",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("fingerprint", String(64), nullable=False, index=True),
    Column("alertname", String(255), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("starts_at", DateTime, nullable=False),
    Column("resolved_at", DateTime),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text),
    Column("notifications", Integer, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("investigation", String(16), nullable=False),
    Column("report_id", String(64)),
    Column("error", Text),
    UniqueConstraint("fingerprint", "starts_at", name="uq_incident_fp_start"),
)
Table(
    "notification_incidents",
    metadata,
    Column("notification_id", Integer, ForeignKey("notifications.id"), primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True, index=True),
    Column("status", String(16), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("receiver", Text, nullable=False),
)
Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("not_before", DateTime, nullable=False),
    Column("lease_until", DateTime),
    Column("worker", String(64)),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Table(
    "reports",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("created_at", DateTime, nullable=False),
    Column("body", Text, nullable=False),
    Column("markdown", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("paths", JSON, nullable=False),
)
Table(
    "ask_sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id")),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)
Table(
    "ask_messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("session_id", String(32), ForeignKey("ask_sessions.id"), nullable=False, index=True),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("queries", JSON, nullable=False),
    Column("created_at", DateTime, nullable=False),
)
Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("sink", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("report_id", String(64)),
    Column("analysis", JSON),
    Column("change", Text),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False),
    Column("not_before", DateTime, nullable=False),
    Column("lease_until", DateTime),
    Column("detail", Text),
    Column("last_error", Text),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("sent_at", DateTime),
)
Table(
    "tickets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("incident_id", Integer, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("sink", String(64), nullable=False),
    Column("ext_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("url", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("incident_id", "sink", name="uq_ticket_incident_sink"),
)
Table(
    "incident_findings",
    metadata,
    Column("incident_id", Integer, ForeignKey("incidents.id"), primary_key=True),
    Column("alertname", String(255), nullable=False, index=True),
    Column("fingerprint", String(64), nullable=False),
    Column("starts_at", DateTime, nullable=False, index=True),
    Column("report_id", String(64), nullable=False),
    Column("causes", JSON, nullable=False),
    Column("cause_keys", Text, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("metric_keys", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)

search_metadata = MetaData()
plain_search = Table(  # report_search off FTS5
    "report_search",
    search_metadata,
    Column("incident_id", Integer, primary_key=True),  # SERIAL on PostgreSQL, as 0.1 made it
    Column("report_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
)

FTS5_DDL = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS report_search USING fts5("
    "incident_id UNINDEXED, report_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2')"
)
PG_INDEX_DDL = (
    "CREATE INDEX IF NOT EXISTS ix_report_search_body ON report_search "
    "USING gin (to_tsvector('simple', body))"
)


def create(conn: Connection, *, checkfirst: bool = False) -> None:
    """Make the 0.1 schema in the caller's transaction (with `checkfirst`, the missing tables only)."""
    metadata.create_all(conn, checkfirst=checkfirst)
    if checkfirst and inspect(conn).has_table("report_search"):
        return
    if conn.dialect.name == "sqlite":
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(FTS5_DDL)
            return
        except OperationalError as exc:  # "no such module: fts5": a build without it
            if "fts5" not in str(exc):
                raise
    plain_search.create(conn)
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(PG_INDEX_DDL)
