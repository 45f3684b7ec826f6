"""A database as release 0.1, the last one without migrations, made and wrote it.

`SQLITE` and `POSTGRES` are its schema, frozen: the DDL its `Base.metadata.create_all` (the tables of
server/db/models.py as they were then) and `create_search_table` emitted on each backend. Do not edit
them: it is what databases out there hold. `make_database` runs them; `write_rows` writes rows as that
release did (naive UTC times, JSON columns, the searchable text in `report_search`).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import timedelta

from sqlalchemy import create_engine, insert, text

from agent.models import AlertInfo, Report, RootCause, utcnow
from server.db.migrations import release_0_1

SQLITE = [
    """CREATE TABLE incidents (
    id INTEGER NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    alertname VARCHAR(255) NOT NULL,
    status VARCHAR(16) NOT NULL,
    starts_at DATETIME NOT NULL,
    resolved_at DATETIME,
    labels JSON NOT NULL,
    annotations JSON NOT NULL,
    generator_url TEXT,
    notifications INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    investigation VARCHAR(16) NOT NULL,
    report_id VARCHAR(64),
    error TEXT,
    PRIMARY KEY (id),
    CONSTRAINT uq_incident_fp_start UNIQUE (fingerprint, starts_at)
)""",
    "CREATE INDEX ix_incidents_alertname ON incidents (alertname)",
    "CREATE INDEX ix_incidents_fingerprint ON incidents (fingerprint)",
    """CREATE TABLE notifications (
    id INTEGER NOT NULL,
    received_at DATETIME NOT NULL,
    source VARCHAR(32) NOT NULL,
    group_key TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (id)
)""",
    """CREATE TABLE ask_sessions (
    id VARCHAR(32) NOT NULL,
    incident_id INTEGER,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    """CREATE TABLE deliveries (
    id INTEGER NOT NULL,
    incident_id INTEGER NOT NULL,
    sink VARCHAR(64) NOT NULL,
    event VARCHAR(16) NOT NULL,
    report_id VARCHAR(64),
    analysis JSON,
    change TEXT,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    not_before DATETIME NOT NULL,
    lease_until DATETIME,
    detail TEXT,
    last_error TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    sent_at DATETIME,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_deliveries_incident_id ON deliveries (incident_id)",
    "CREATE INDEX ix_deliveries_state ON deliveries (state)",
    """CREATE TABLE incident_findings (
    incident_id INTEGER NOT NULL,
    alertname VARCHAR(255) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    starts_at DATETIME NOT NULL,
    report_id VARCHAR(64) NOT NULL,
    causes JSON NOT NULL,
    cause_keys TEXT NOT NULL,
    metrics JSON NOT NULL,
    metric_keys TEXT NOT NULL,
    summary TEXT NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (incident_id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_incident_findings_alertname ON incident_findings (alertname)",
    "CREATE INDEX ix_incident_findings_starts_at ON incident_findings (starts_at)",
    """CREATE TABLE jobs (
    id INTEGER NOT NULL,
    incident_id INTEGER NOT NULL,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    not_before DATETIME NOT NULL,
    lease_until DATETIME,
    worker VARCHAR(64),
    last_error TEXT,
    created_at DATETIME NOT NULL,
    updated_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_jobs_incident_id ON jobs (incident_id)",
    "CREATE INDEX ix_jobs_state ON jobs (state)",
    """CREATE TABLE notification_incidents (
    notification_id INTEGER NOT NULL,
    incident_id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    receiver TEXT NOT NULL,
    PRIMARY KEY (notification_id, incident_id),
    FOREIGN KEY(notification_id) REFERENCES notifications (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_notification_incidents_incident_id ON notification_incidents (incident_id)",
    """CREATE TABLE reports (
    id VARCHAR(64) NOT NULL,
    incident_id INTEGER NOT NULL,
    created_at DATETIME NOT NULL,
    body TEXT NOT NULL,
    markdown TEXT NOT NULL,
    html TEXT NOT NULL,
    paths JSON NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_reports_incident_id ON reports (incident_id)",
    """CREATE TABLE tickets (
    id INTEGER NOT NULL,
    incident_id INTEGER NOT NULL,
    sink VARCHAR(64) NOT NULL,
    ext_id VARCHAR(255) NOT NULL,
    "key" VARCHAR(255) NOT NULL,
    url TEXT NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_ticket_incident_sink UNIQUE (incident_id, sink),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_tickets_incident_id ON tickets (incident_id)",
    """CREATE TABLE ask_messages (
    id INTEGER NOT NULL,
    session_id VARCHAR(32) NOT NULL,
    role VARCHAR(16) NOT NULL,
    content TEXT NOT NULL,
    queries JSON NOT NULL,
    created_at DATETIME NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(session_id) REFERENCES ask_sessions (id)
)""",
    "CREATE INDEX ix_ask_messages_session_id ON ask_messages (session_id)",
    """CREATE VIRTUAL TABLE IF NOT EXISTS report_search USING fts5(
    incident_id UNINDEXED, report_id UNINDEXED, body, tokenize = 'unicode61 remove_diacritics 2'
)""",
]

POSTGRES = [
    """CREATE TABLE incidents (
    id SERIAL NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    alertname VARCHAR(255) NOT NULL,
    status VARCHAR(16) NOT NULL,
    starts_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    resolved_at TIMESTAMP WITHOUT TIME ZONE,
    labels JSON NOT NULL,
    annotations JSON NOT NULL,
    generator_url TEXT,
    notifications INTEGER NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    investigation VARCHAR(16) NOT NULL,
    report_id VARCHAR(64),
    error TEXT,
    PRIMARY KEY (id),
    CONSTRAINT uq_incident_fp_start UNIQUE (fingerprint, starts_at)
)""",
    "CREATE INDEX ix_incidents_alertname ON incidents (alertname)",
    "CREATE INDEX ix_incidents_fingerprint ON incidents (fingerprint)",
    """CREATE TABLE notifications (
    id SERIAL NOT NULL,
    received_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    source VARCHAR(32) NOT NULL,
    group_key TEXT NOT NULL,
    alerts INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (id)
)""",
    """CREATE TABLE ask_sessions (
    id VARCHAR(32) NOT NULL,
    incident_id INTEGER,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    """CREATE TABLE deliveries (
    id SERIAL NOT NULL,
    incident_id INTEGER NOT NULL,
    sink VARCHAR(64) NOT NULL,
    event VARCHAR(16) NOT NULL,
    report_id VARCHAR(64),
    analysis JSON,
    change TEXT,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    not_before TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    lease_until TIMESTAMP WITHOUT TIME ZONE,
    detail TEXT,
    last_error TEXT,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    sent_at TIMESTAMP WITHOUT TIME ZONE,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_deliveries_incident_id ON deliveries (incident_id)",
    "CREATE INDEX ix_deliveries_state ON deliveries (state)",
    """CREATE TABLE incident_findings (
    incident_id INTEGER NOT NULL,
    alertname VARCHAR(255) NOT NULL,
    fingerprint VARCHAR(64) NOT NULL,
    starts_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    report_id VARCHAR(64) NOT NULL,
    causes JSON NOT NULL,
    cause_keys TEXT NOT NULL,
    metrics JSON NOT NULL,
    metric_keys TEXT NOT NULL,
    summary TEXT NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (incident_id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_incident_findings_alertname ON incident_findings (alertname)",
    "CREATE INDEX ix_incident_findings_starts_at ON incident_findings (starts_at)",
    """CREATE TABLE jobs (
    id SERIAL NOT NULL,
    incident_id INTEGER NOT NULL,
    state VARCHAR(16) NOT NULL,
    attempts INTEGER NOT NULL,
    not_before TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    lease_until TIMESTAMP WITHOUT TIME ZONE,
    worker VARCHAR(64),
    last_error TEXT,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_jobs_incident_id ON jobs (incident_id)",
    "CREATE INDEX ix_jobs_state ON jobs (state)",
    """CREATE TABLE notification_incidents (
    notification_id INTEGER NOT NULL,
    incident_id INTEGER NOT NULL,
    status VARCHAR(16) NOT NULL,
    outcome VARCHAR(16) NOT NULL,
    receiver TEXT NOT NULL,
    PRIMARY KEY (notification_id, incident_id),
    FOREIGN KEY(notification_id) REFERENCES notifications (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_notification_incidents_incident_id ON notification_incidents (incident_id)",
    """CREATE TABLE reports (
    id VARCHAR(64) NOT NULL,
    incident_id INTEGER NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    body TEXT NOT NULL,
    markdown TEXT NOT NULL,
    html TEXT NOT NULL,
    paths JSON NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_reports_incident_id ON reports (incident_id)",
    """CREATE TABLE tickets (
    id SERIAL NOT NULL,
    incident_id INTEGER NOT NULL,
    sink VARCHAR(64) NOT NULL,
    ext_id VARCHAR(255) NOT NULL,
    key VARCHAR(255) NOT NULL,
    url TEXT NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    CONSTRAINT uq_ticket_incident_sink UNIQUE (incident_id, sink),
    FOREIGN KEY(incident_id) REFERENCES incidents (id)
)""",
    "CREATE INDEX ix_tickets_incident_id ON tickets (incident_id)",
    """CREATE TABLE ask_messages (
    id SERIAL NOT NULL,
    session_id VARCHAR(32) NOT NULL,
    role VARCHAR(16) NOT NULL,
    content TEXT NOT NULL,
    queries JSON NOT NULL,
    created_at TIMESTAMP WITHOUT TIME ZONE NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY(session_id) REFERENCES ask_sessions (id)
)""",
    "CREATE INDEX ix_ask_messages_session_id ON ask_messages (session_id)",
    """CREATE TABLE report_search (
    incident_id SERIAL NOT NULL,
    report_id VARCHAR(64) NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (incident_id)
)""",
    """CREATE INDEX IF NOT EXISTS ix_report_search_body ON report_search
    USING gin (to_tsvector('simple', body))""",
]


def make_database(url: str, *, without: Collection[str] = ()) -> None:
    """A database as release 0.1 made it: its tables (but `without`), no `alembic_version`."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in SQLITE if conn.dialect.name == "sqlite" else POSTGRES:
                if _table_of(statement) not in without:
                    conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def _table_of(statement: str) -> str:
    """The table a CREATE TABLE or CREATE INDEX statement makes or indexes."""
    found = re.search(r" ON (\w+)|TABLE (?:IF NOT EXISTS )?(\w+)", statement)
    assert found is not None, statement
    return found.group(1) or found.group(2)


T0 = utcnow().replace(microsecond=0) - timedelta(days=2)  # when the old incident started


def _report() -> Report:
    alert = AlertInfo(
        name="LoginFailures",
        labels={"alertname": "LoginFailures", "region": "eu"},
        starts_at=T0,
        fingerprint="fp-old",
    )
    return Report(
        id="r-old-1",
        alert=alert,
        expression="sum(rate(login_failures_total[5m])) > 1",
        summary="admins in Zürich could not log in after the sso rollout",
        root_causes=[RootCause(labels={"ip_region": "zurich"}, score=0.9, statement="zurich explains it")],
        localized=True,
    )


REPORT = _report()


def write_rows(url: str) -> None:
    """Rows as release 0.1 wrote them: an investigated incident with its notification, job, report,
    findings and searchable text, a delivery, a ticket and an ask session."""
    t = {table.name: table for table in release_0_1.metadata.sorted_tables}
    report = REPORT
    now = utcnow().replace(tzinfo=None)
    starts = T0.replace(tzinfo=None)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            insert(t["notifications"]).values(
                received_at=now, source="alertmanager", group_key="g", alerts=1, body="{}"
            )
        )
        conn.execute(
            insert(t["incidents"]).values(
                fingerprint="fp-old",
                alertname="LoginFailures",
                status="firing",
                starts_at=starts,
                labels={"alertname": "LoginFailures", "region": "eu"},
                annotations={"summary": "logins fail"},
                notifications=1,
                created_at=now,
                updated_at=now,
                investigation="done",
                report_id=report.id,
            )
        )
        conn.execute(
            insert(t["jobs"]).values(
                incident_id=1, state="done", attempts=1, not_before=now, created_at=now, updated_at=now
            )
        )
        conn.execute(
            insert(t["reports"]).values(
                id=report.id,
                incident_id=1,
                created_at=now,
                body=report.model_dump_json(),
                markdown="# LoginFailures\n\nthe sso rollout",
                html="<html></html>",
                paths={},
            )
        )
        conn.execute(
            insert(t["incident_findings"]).values(
                incident_id=1,
                alertname="LoginFailures",
                fingerprint="fp-old",
                starts_at=starts,
                report_id=report.id,
                causes=[{"ip_region": "zurich"}],
                cause_keys="|ip_region=zurich|",
                metrics=["login_failures_total"],
                metric_keys="|login_failures_total|",
                summary=report.summary,
                updated_at=now,
            )
        )
        conn.execute(
            text("INSERT INTO report_search (incident_id, report_id, body) VALUES (1, :r, :b)"),
            {"r": report.id, "b": f"LoginFailures\n{report.summary}\nip_region=zurich"},
        )
        conn.execute(
            insert(t["deliveries"]).values(
                incident_id=1,
                sink="ops-redmine",
                event="firing",
                report_id=report.id,
                analysis={"causes": ["ip_region=zurich"]},
                state="done",
                attempts=1,
                not_before=now,
                created_at=now,
                updated_at=now,
                sent_at=now,
            )
        )
        conn.execute(
            insert(t["tickets"]).values(
                incident_id=1, sink="ops-redmine", ext_id="7", key="#7", url="http://r/7", created_at=now
            )
        )
        conn.execute(insert(t["ask_sessions"]).values(id="s1", incident_id=1, created_at=now, updated_at=now))
        conn.execute(
            insert(t["ask_messages"]).values(
                session_id="s1", role="user", content="why?", queries=[], created_at=now
            )
        )
    engine.dispose()
