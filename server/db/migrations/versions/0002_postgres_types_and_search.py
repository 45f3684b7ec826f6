"""PostgreSQL: ids as BIGINT, strings as TEXT, and the full-text index of reports as a tsvector column.

On PostgreSQL only (on SQLite there is nothing to do):
- ids, and the columns that refer to them, become BIGINT, their sequences too: the API takes ids up to
  2**63 - 1, as SQLite stores them, and PostgreSQL's INTEGER stops at 2**31 - 1 (a larger id in a
  query was an error, not "not found"). This rewrites those tables, once;
- every VARCHAR(n) column of 0.1 becomes TEXT. SQLite never enforced those lengths, PostgreSQL
  refused a longer value (an alert's fingerprint or name from outside, a sink's name, a ticket's key),
  and the same input must be taken on both; PostgreSQL changes the type without rewriting the table;
- `report_search` gets `document`, the report's words as a tsvector (what server/db/history.py
  `document_words` makes of its body), with a GIN index. It replaces the index on
  `to_tsvector('simple', body)`: PostgreSQL's parser and lower-casing follow the server's locale, the
  words of `document` are the ones SQLite's FTS5 reads (case folded, diacritics removed, split at
  punctuation), so a query finds the same reports on both. The rows there are filled from their body
  here, with the words as this revision reads them (frozen below, like every migration);
- `report_search.incident_id` loses the sequence 0.1 gave it (it is an incident's id, never drawn).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import unicodedata

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import TSVECTOR

from server.db.migrations import release_0_1

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MAX_DOCUMENT_CHARS = 200_000  # of a report's words (a tsvector holds at most 1 MB)
BATCH = 500


def _in_word(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LNM" or category == "Co"


def _words(text: str) -> str:
    """The words of `text` as server/db/history.py `document_words` read them at this revision."""
    folded = unicodedata.normalize("NFD", text.casefold())
    kept = "".join(ch if _in_word(ch) else " " for ch in folded if unicodedata.category(ch) != "Mn")
    words = " ".join(kept.split())
    return words if len(words) <= MAX_DOCUMENT_CHARS else words[:MAX_DOCUMENT_CHARS].rpartition(" ")[0]


def _varchar_columns() -> list[tuple[str, str, int]]:
    out = [("report_search", "report_id", 64)]
    for table in release_0_1.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, sa.String) and not isinstance(column.type, sa.Text):
                assert column.type.length is not None
                out.append((table.name, column.name, column.type.length))
    return out


def _id_columns() -> list[tuple[str, str]]:
    """The ids of 0.1 (integer primary keys, drawn from a sequence) and the columns that refer to them."""
    out = [("report_search", "incident_id")]
    for table in release_0_1.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, sa.Integer) and (column.primary_key or column.foreign_keys):
                out.append((table.name, column.name))
    return out


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    for table, column in _id_columns():
        op.alter_column(table, column, type_=sa.BigInteger(), existing_type=sa.Integer())
        sequence = bind.scalar(sa.text("SELECT pg_get_serial_sequence(:t, :c)"), {"t": table, "c": column})
        if sequence is not None and table != "report_search":
            op.execute(f"ALTER SEQUENCE {sequence} AS bigint")
    for table, column, length in _varchar_columns():
        op.alter_column(table, column, type_=sa.Text(), existing_type=sa.String(length))

    op.add_column("report_search", sa.Column("document", TSVECTOR(), nullable=True))
    search = sa.table("report_search", sa.column("incident_id", sa.Integer), sa.column("body", sa.Text))
    after = -1
    while True:
        rows = bind.execute(
            sa.select(search.c.incident_id, search.c.body)
            .where(search.c.incident_id > after)
            .order_by(search.c.incident_id)
            .limit(BATCH)
        ).all()
        for incident_id, body in rows:
            bind.execute(
                sa.text(
                    "UPDATE report_search SET document = to_tsvector('simple', :words) WHERE incident_id = :i"
                ),
                {"words": _words(body), "i": incident_id},
            )
        if len(rows) < BATCH:
            break
        after = rows[-1][0]
    op.alter_column("report_search", "document", nullable=False, existing_type=TSVECTOR())
    op.execute("DROP INDEX IF EXISTS ix_report_search_body")
    op.create_index("ix_report_search_document", "report_search", ["document"], postgresql_using="gin")
    op.execute("ALTER TABLE report_search ALTER COLUMN incident_id DROP DEFAULT")
    op.execute("DROP SEQUENCE IF EXISTS report_search_incident_id_seq")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.drop_index("ix_report_search_document", table_name="report_search")
    op.drop_column("report_search", "document")
    op.execute(release_0_1.PG_INDEX_DDL)
    for table, column, length in _varchar_columns():
        op.alter_column(table, column, type_=sa.String(length), existing_type=sa.Text())
    for table, column in _id_columns():
        op.alter_column(table, column, type_=sa.Integer(), existing_type=sa.BigInteger())
