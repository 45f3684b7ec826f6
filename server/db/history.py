"""Incidents seen before (the store's `agent.history.History`) and the full-text search of reports.

What an incident's last good report found is kept in `incident_findings` (one row per incident: its root
causes, the metric names its alert expression reads, its summary), and its text in `report_search`. Both
are written by `index_report`, in the transaction of `JobQueue.complete` that makes a good (not degraded)
report current; a degraded report is never indexed, so it never replaces the last good analysis here
either. Reports stored before this index existed are indexed at start-up (`History.backfill`): every
incident whose current report is good but has no findings, in batches of one transaction each.

`History.similar` reads a bounded set of candidates (the most recent findings of the same alert, and of
other alerts reading one of the same metrics) and ranks them with tools/similarity.py. The counts of a
`HistorySummary` are read from the incidents themselves (an incident counts whether or not it was
analysed); `first_seen` is the earliest start of the alert among the past incidents (before
`Likeness.before`, without the incident under investigation), so None means "first time".

The full-text index, by backend (both made by the migrations, server/db/migrations/):

    SQLite      an FTS5 virtual table `report_search(incident_id UNINDEXED, report_id UNINDEXED, body)`
                (tokenizer unicode61, diacritics removed); each term of a query becomes an FTS5 string
                (double quotes, embedded quotes doubled), so no user input is read as FTS5 syntax
                (`NEAR(`, `OR`, `*`, column filters). Without the FTS5 module (a rare SQLite build) a
                plain table, searched with LIKE.
    PostgreSQL  the table `report_search` of models.py: the body, and its words as a tsvector
                (`document`, GIN-indexed): `to_tsvector('simple', document_words(body))`. A query is
                `document @@ (phraseto_tsquery('simple', words(term1)) && ...)`. Its input is text,
                never tsquery syntax, and the words are cut as FTS5's tokenizer cuts them (letters,
                digits and marks, case folded, diacritics removed, any other character a separator),
                before PostgreSQL sees them: the 'simple' configuration (no stemming, no stop words:
                reports are in Chinese or English, and English stemming would make "failed" find
                "fail") only turns them into lexemes, whatever the server's locale.

On both, every term must match, and a term is matched as a phrase of its words ("user_type=guest" is
"user type guest", in that order), anywhere in the text, case and diacritics aside ("unicode" finds
"ünïcödé"). A run of Chinese characters without blanks is one word on both, so "登录" finds "登录 失败"
but not "登录失败". On PostgreSQL only the first MAX_DOCUMENT_CHARS characters of a report's words are
searchable (a tsvector holds at most 1 MB).

A term is a run of text between blanks holding at least one letter or digit; control and format
characters count as blanks. A query with no term (empty, or only punctuation such as `*` or `"`) matches
nothing; the API takes an absent or blank `q` as no filter.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    ColumnElement,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    column,
    delete,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.orm import InstrumentedAttribute, Session

from agent.history import HistorySummary, Likeness, PastIncident, label_key
from agent.models import Report, utcnow
from server.db.database import Database
from server.db.models import Incident, IncidentFinding, ReportRow, Ticket, report_search
from tools import promql
from tools.similarity import Candidate, Ranked, rank

SAME_ALERT_CANDIDATES = 300  # the most recent findings of the same alert that are ranked
FAMILY_CANDIDATES = 100  # and of other alerts sharing a metric name
MAX_METRICS = 20  # metric names looked up for the family
MAX_TERMS = 32  # terms of a search query (the API bounds `q` to 200 characters)
BACKFILL_BATCH = 100  # reports indexed per transaction by `History.backfill`

MAX_DOCUMENT_CHARS = 200_000  # of a report's words indexed on PostgreSQL (a tsvector holds 1 MB at most)
_SIMPLE = literal("simple").cast(REGCONFIG)  # PostgreSQL's text search configuration: no stemming

# The full-text table of a SQLite without FTS5: the same columns, searched with LIKE.
_PLAIN_SEARCH = Table(
    "report_search",
    MetaData(),
    Column("incident_id", Integer, primary_key=True),
    Column("report_id", String(64), nullable=False),
    Column("body", Text, nullable=False),
)


def _search_kind(s: Session) -> str:
    """fts5 | tsvector | like: how `report_search` is searched on this database."""
    dialect = s.get_bind().dialect.name
    if dialect == "postgresql":
        return "tsvector"
    if dialect == "sqlite":
        ddl = s.scalar(text("SELECT sql FROM sqlite_master WHERE name = 'report_search'"))
        if ddl and "fts5" in str(ddl).lower():
            return "fts5"
    return "like"


def _in_word(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category[0] in "LNM" or category == "Co"  # letters, digits, marks, private use


def document_words(text: str) -> str:
    """The words of `text` as FTS5's unicode61 tokenizer reads them (case folded, diacritics removed,
    anything but letters, digits and marks a separator), blank-separated: what PostgreSQL's index and
    queries get. At most MAX_DOCUMENT_CHARS characters, cut between words."""
    folded = unicodedata.normalize("NFD", text.casefold())
    kept = "".join(ch if _in_word(ch) else " " for ch in folded if unicodedata.category(ch) != "Mn")
    words = " ".join(kept.split())
    return words if len(words) <= MAX_DOCUMENT_CHARS else words[:MAX_DOCUMENT_CHARS].rpartition(" ")[0]


# ---------------------------------------------------------------- indexing a good report


def _key_part(value: str) -> str:
    """A key as it sits between the "|" of a keys column ("%" and "|" percent-encoded)."""
    return value.replace("%", "%25").replace("|", "%7C")


def joined_keys(keys: Iterable[str]) -> str:
    """`|k1|k2|` (empty without keys): each key findable with LIKE '%|k|%'."""
    parts = [_key_part(k) for k in keys]
    return f"|{'|'.join(parts)}|" if parts else ""


def _like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _has_key(col: InstrumentedAttribute[str], key: str) -> ColumnElement[bool]:
    """A keys column holds `key` (a prefilter: LIKE ignores ASCII case on SQLite; `_holds` is exact)."""
    return col.like(f"%|{_like_escape(_key_part(key))}|%", escape="\\")


def _holds(keys: str, key: str) -> bool:
    return f"|{_key_part(key)}|" in keys


_KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool",
    "offset", "inf", "nan", "start", "end",
}  # fmt: skip
_IDENT = re.compile(r"(?<![\w:.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def expression_metrics(expression: str | None) -> list[str]:
    """The metric names an alert expression reads, in order (tools/promql.py; a regex when it does not
    parse)."""
    if not expression:
        return []
    try:
        tree = promql.parse(expression)
    except Exception:  # whatever the parser makes of it, the report is stored: fall back to the regex
        return _regex_metrics(expression)
    return promql.metric_names(tree)


def _regex_metrics(expression: str) -> list[str]:
    """Identifiers outside strings, matchers, ranges and groupings that are not called (functions)
    and not keywords: a rough reading of an expression the parser refused."""
    body = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', " ", expression)
    body = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", body)
    body = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", body)
    names: dict[str, None] = {}
    for m in _IDENT.finditer(body):
        if body[m.end() :].lstrip().startswith("(") or m.group(0).lower() in _KEYWORDS:
            continue
        names.setdefault(m.group(0), None)
    return list(names)


def _search_body(inc: Incident, report: Report, markdown: str) -> str:
    labels = [f"{k}={v}" for rc in report.root_causes for k, v in rc.labels.items()]
    labels += [f"{k}={v}" for k, v in (inc.labels or {}).items()]
    statements = [rc.statement for rc in report.root_causes]
    return "\n".join([inc.alertname, report.summary, *statements, " ".join(labels), markdown])


def index_report(s: Session, inc: Incident, report: Report, markdown: str) -> None:
    """Make a good report the incident's findings and searchable text, in the caller's transaction (the
    one that makes it current: `JobQueue.complete`)."""
    causes = [dict(rc.labels) for rc in report.root_causes]
    metrics = expression_metrics(report.expression)
    values = {
        "alertname": inc.alertname,
        "fingerprint": inc.fingerprint,
        "starts_at": inc.starts_at,
        "report_id": report.id,
        "causes": causes,
        "cause_keys": joined_keys(label_key(c) for c in causes),
        "metrics": metrics,
        "metric_keys": joined_keys(metrics),
        "summary": report.summary,
        "updated_at": utcnow(),
    }
    row = s.get(IncidentFinding, inc.id)
    if row is None:
        s.add(IncidentFinding(incident_id=inc.id, **values))
    else:
        for name, value in values.items():
            setattr(row, name, value)
    body = _search_body(inc, report, markdown)
    if s.get_bind().dialect.name == "postgresql":
        s.execute(delete(report_search).where(report_search.c.incident_id == inc.id))
        document = func.to_tsvector(_SIMPLE, document_words(body))
        s.execute(
            insert(report_search).values(
                incident_id=inc.id, report_id=report.id, body=body, document=document
            )
        )
        return
    s.execute(text("DELETE FROM report_search WHERE incident_id = :i"), {"i": inc.id})
    s.execute(
        text("INSERT INTO report_search (incident_id, report_id, body) VALUES (:i, :r, :b)"),
        {"i": inc.id, "r": report.id, "b": body},
    )


# ---------------------------------------------------------------- full-text search


def search_terms(q: str) -> list[str]:
    """The terms of a query (see the module's docstring), at most MAX_TERMS."""
    blanked = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Cs") else ch for ch in q)
    return [t for t in blanked.split() if any(ch.isalnum() for ch in t)][:MAX_TERMS]


def fts5_query(terms: Sequence[str]) -> str:
    """The FTS5 query matching every term as a string, never as syntax."""
    return " ".join('"' + t.replace('"', '""') + '"' for t in terms)


def tsquery(terms: Sequence[str]) -> ColumnElement[Any]:
    """PostgreSQL's query matching every term as a phrase of its words, never as tsquery syntax."""
    phrases = [func.phraseto_tsquery(_SIMPLE, document_words(t)) for t in terms]
    query: ColumnElement[Any] = phrases[0]
    for phrase in phrases[1:]:
        query = query.op("&&")(phrase)
    return query


def search_filter(s: Session, q: str) -> ColumnElement[bool]:
    """Incidents whose current good report matches `q` (false without a term)."""
    terms = search_terms(q)
    if not terms:
        return false()
    kind = _search_kind(s)
    if kind == "fts5":
        sub = (
            text("SELECT incident_id FROM report_search WHERE report_search MATCH :q")
            .bindparams(q=fts5_query(terms))
            .columns(column("incident_id", Integer))
        )
        return Incident.id.in_(sub)
    if kind == "tsvector":
        return Incident.id.in_(
            select(report_search.c.incident_id).where(report_search.c.document.bool_op("@@")(tsquery(terms)))
        )
    body = _PLAIN_SEARCH.c.body
    return Incident.id.in_(
        select(_PLAIN_SEARCH.c.incident_id).where(
            and_(*(body.like(f"%{_like_escape(t)}%", escape="\\") for t in terms))
        )
    )


# ---------------------------------------------------------------- incidents seen before


def _candidate(row: IncidentFinding) -> Candidate:
    return Candidate(
        id=row.incident_id,
        alertname=row.alertname,
        starts_at=row.starts_at,
        causes=tuple(frozenset(c.items()) for c in row.causes or []),
        metrics=frozenset(row.metrics or []),
    )


class History:
    """The store's answer to agent.history.History, and the search of reports."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def likeness(self, incident_id: int) -> Likeness | None:
        """What a stored incident is compared on (its findings; without them, its alert only), for
        incidents before it. None: no such incident."""
        with self.db.session() as s:
            inc = s.get(Incident, incident_id)
            if inc is None:
                return None
            found = s.get(IncidentFinding, incident_id)
            causes = tuple(tuple(sorted(c.items())) for c in found.causes) if found else ()
            return Likeness(
                alertname=inc.alertname,
                causes=causes,
                metrics=tuple(found.metrics) if found else (),
                fingerprint=inc.fingerprint,
                before=inc.starts_at,
                exclude_incident=inc.id,
            )

    def similar(self, like: Likeness, limit: int = 5) -> HistorySummary:
        """The past incidents most like `like` (tools/similarity.py's order), and how often it fired."""
        causes = [frozenset(c) for c in like.causes]
        with self.db.session() as s:
            rows = {r.incident_id: r for r in self._candidates(s, like)}
            ranked = rank(
                like.alertname, causes, frozenset(like.metrics), [_candidate(r) for r in rows.values()]
            )
            past = self._past(s, ranked[: max(0, limit)], rows)
            first_seen, last_30, same_cause = self._counts(s, like)
        return HistorySummary(
            similar=past, first_seen=first_seen, last_30_days=last_30, same_cause_30_days=same_cause
        )

    def search(self, q: str, limit: int = 50, offset: int = 0) -> tuple[list[int], int]:
        """The ids of the incidents whose report matches `q`, newest first, and how many match."""
        with self.db.session() as s:
            where = search_filter(s, q)
            total = s.scalar(select(func.count()).select_from(Incident).where(where)) or 0
            ids = s.scalars(
                select(Incident.id).where(where).order_by(Incident.id.desc()).limit(limit).offset(offset)
            )
            return list(ids), int(total)

    def backfill(self, batch: int = BACKFILL_BATCH) -> int:
        """Index the current good reports that have no findings (stored before the index existed), as
        `JobQueue.complete` would have; returns how many. Idempotent: an indexed incident has findings.
        One transaction per `batch` incidents, so intake is never kept waiting long; a report that does
        not read as a `Report` is left out (it stays unsearchable, as it is)."""
        done = after = 0
        while True:
            with self.db.session() as s:
                rows = s.execute(
                    select(Incident, ReportRow.body, ReportRow.markdown)
                    .join(ReportRow, ReportRow.id == Incident.report_id)
                    .outerjoin(IncidentFinding, IncidentFinding.incident_id == Incident.id)
                    .where(
                        Incident.id > after,
                        IncidentFinding.incident_id.is_(None),
                        # a prefilter (the body is compact JSON); `degraded` is checked below
                        ReportRow.body.not_like('%"degraded":true%'),
                    )
                    .order_by(Incident.id)
                    .limit(batch)
                    .with_for_update(of=Incident)
                ).all()
                for inc, body, markdown in rows:
                    try:
                        report = Report.model_validate_json(body)
                    except ValueError:  # a body no current model reads: not indexed
                        continue
                    if not report.degraded:
                        index_report(s, inc, report, markdown)
                        done += 1
            if len(rows) < batch:
                return done
            after = rows[-1][0].id

    def _candidates(self, s: Session, like: Likeness) -> list[IncidentFinding]:
        scope: list[ColumnElement[bool]] = []
        if like.before is not None:
            scope.append(IncidentFinding.starts_at < like.before)
        if like.exclude_incident is not None:
            scope.append(IncidentFinding.incident_id != like.exclude_incident)
        newest = (IncidentFinding.starts_at.desc(), IncidentFinding.incident_id.desc())
        same = select(IncidentFinding).where(IncidentFinding.alertname == like.alertname, *scope)
        rows = list(s.scalars(same.order_by(*newest).limit(SAME_ALERT_CANDIDATES)))
        metrics = list(dict.fromkeys(like.metrics))[:MAX_METRICS]
        if metrics:
            family = select(IncidentFinding).where(
                IncidentFinding.alertname != like.alertname,
                or_(*(_has_key(IncidentFinding.metric_keys, m) for m in metrics)),
                *scope,
            )
            rows += s.scalars(family.order_by(*newest).limit(FAMILY_CANDIDATES))
        return rows

    def _past(self, s: Session, ranked: list[Ranked], rows: dict[int, IncidentFinding]) -> list[PastIncident]:
        ids = [r.candidate.id for r in ranked]
        incidents = {i.id: i for i in s.scalars(select(Incident).where(Incident.id.in_(ids)))}
        tickets: dict[int, Ticket] = {}
        for t in s.scalars(select(Ticket).where(Ticket.incident_id.in_(ids)).order_by(Ticket.id)):
            tickets.setdefault(t.incident_id, t)
        out = []
        for r in ranked:
            inc, found, ticket = incidents[r.candidate.id], rows[r.candidate.id], tickets.get(r.candidate.id)
            resolved = inc.resolved_at
            out.append(
                PastIncident(
                    incident_id=inc.id,
                    alertname=inc.alertname,
                    starts_at=inc.starts_at,
                    resolved_at=resolved,
                    duration_seconds=(resolved - inc.starts_at).total_seconds() if resolved else None,
                    root_causes=[dict(c) for c in found.causes or []],
                    summary=found.summary,
                    report_id=found.report_id,
                    ticket=ticket.key if ticket else None,
                    ticket_url=ticket.url if ticket else None,
                    closing_comment=ticket.closing_comment if ticket else None,
                    match=r.match,
                    score=r.score,
                )
            )
        return out

    def _counts(self, s: Session, like: Likeness) -> tuple[datetime | None, int, int]:
        """first_seen, last_30_days and same_cause_30_days (see HistorySummary)."""
        past: list[ColumnElement[bool]] = [Incident.alertname == like.alertname]
        if like.before is not None:
            past.append(Incident.starts_at < like.before)
        if like.exclude_incident is not None:
            past.append(Incident.id != like.exclude_incident)
        first_seen = s.scalar(select(func.min(Incident.starts_at)).where(*past))
        recent = [*past, Incident.starts_at >= (like.before or utcnow()) - timedelta(days=30)]
        last_30 = s.scalar(select(func.count()).select_from(Incident).where(*recent)) or 0
        same_cause = 0
        if like.causes:
            key = label_key(like.causes[0])
            keys = s.scalars(
                select(IncidentFinding.cause_keys)
                .join(Incident, Incident.id == IncidentFinding.incident_id)
                .where(*recent, _has_key(IncidentFinding.cause_keys, key))
            )
            same_cause = sum(1 for k in keys if _holds(k, key))
        return first_seen, int(last_30), same_cause
