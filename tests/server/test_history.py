"""Incidents seen before and the full-text search of reports, on both backends: a SQLite file (FTS5)
and a database of the session's PostgreSQL (tsvector).

Incidents come in through `store.intake.ingest`, their reports through the job queue's own `claim` and
`complete` (the worker's path without an investigation); the HTTP part runs the real app.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import select, text

from agent.history import History as HistoryContract
from agent.history import Likeness
from agent.models import AlertInfo, Report, RootCause, utcnow
from server.db import Store
from server.db.history import expression_metrics, fts5_query, search_terms
from server.db.models import IncidentFinding
from server.settings import Settings
from tests.conftest import ServerEnv, serve

NOW = utcnow().replace(microsecond=0)
LOGIN_EXPR = "sum(rate(login_failures_total[5m])) / sum(rate(login_attempts_total[5m])) > 0.1"
LATENCY_EXPR = (
    "histogram_quantile(0.99, sum by (le) (rate(login_seconds_bucket[5m]))) > 1 and login_attempts_total > 0"
)
ADMIN_SH = {"ip_region": "shanghai", "user_type": "admin"}
HOSTILE = [
    '"',
    "*",
    "NEAR(",
    "a OR",
    "NOT",
    "AND b",
    "body:x",
    "^x",
    "x*",
    '"" ""',
    "ünïcödé 登录",
    "a\x00b",
    "x" * 200,
]


def _alert(name: str, fingerprint: str, starts_at: datetime, **labels: str) -> AlertInfo:
    return AlertInfo(
        name=name,
        labels={"alertname": name, **labels},
        starts_at=starts_at,
        fingerprint=fingerprint,
    )


def _report(
    alert: AlertInfo,
    causes: list[dict[str, str]],
    *,
    summary: str = "",
    expression: str | None = LOGIN_EXPR,
    degraded: bool = False,
) -> Report:
    return Report(
        id=f"r-{alert.fingerprint}-{random.getrandbits(32):08x}",
        alert=alert,
        expression=expression,
        summary=summary or f"{alert.name} fired",
        root_causes=[
            RootCause(labels=c, score=0.9 - i / 10, statement=f"cause {i} explains the rise")
            for i, c in enumerate(causes)
        ],
        localized=bool(causes),
        degraded=degraded,
    )


def _complete(store: Store, report: Report) -> None:
    job = store.jobs.claim("test", 600)
    assert job is not None and not hasattr(job, "error")
    store.jobs.complete(job.id, report, f"# {report.alert.name}\n\n{report.summary}\n", "<html></html>", {})


def add(
    store: Store,
    name: str,
    fingerprint: str,
    starts_at: datetime,
    causes: list[dict[str, str]] | None = None,
    *,
    resolved_at: datetime | None = None,
    labels: dict[str, str] | None = None,
    **report: object,
) -> int:
    """An incident through intake; with `causes` (even empty), a report through the job queue."""
    alert = _alert(name, fingerprint, starts_at, **(labels or {}))
    created = store.intake.ingest("test", "{}", "", [alert]).created
    assert len(created) == 1
    if causes is not None:
        _complete(store, _report(alert, causes, **report))  # type: ignore[arg-type]
    else:
        job = store.jobs.claim("test", 600)
        assert job is not None
        store.jobs.fail(job.id, "not investigated in this test")
    if resolved_at is not None:
        done = alert.model_copy(update={"status": "resolved", "ends_at": resolved_at})
        assert store.intake.ingest("test", "{}", "", [done]).resolved == created
    return created[0]


def reinvestigate(store: Store, incident_id: int, causes: list[dict[str, str]], **report: object) -> None:
    assert store.jobs.requeue(incident_id)
    found = store.incidents.detail(incident_id)
    assert found is not None
    _complete(store, _report(found.incident.alert(), causes, **report))  # type: ignore[arg-type]


@pytest.fixture
def past(store: Store) -> dict[str, int]:
    """Incidents before the one under investigation (which starts at NOW)."""
    ids = {
        # 40 days ago: the alert's first firing, never analysed
        "first": add(store, "LoginFailures", "fp-a", NOW - timedelta(days=40)),
        # the same cause, the oldest of the analysed ones; resolved after 15 minutes, with a ticket
        "same": add(
            store,
            "LoginFailures",
            "fp-a",
            NOW - timedelta(days=20),
            [ADMIN_SH],
            resolved_at=NOW - timedelta(days=20) + timedelta(minutes=15),
            summary="admins in shanghai could not log in after the sso rollout",
        ),
        "overlap": add(
            store,
            "LoginFailures",
            "fp-a",
            NOW - timedelta(days=10),
            [{"ip_region": "shanghai", "user_type": "guest"}],
        ),
        "alert": add(store, "LoginFailures", "fp-b", NOW - timedelta(days=5), [{"ip_region": "guangzhou"}]),
        # the same cause as a second cause: counts as the same cause in 30 days, ranks as same_cause
        "second": add(
            store, "LoginFailures", "fp-a", NOW - timedelta(days=8), [{"ip_region": "beijing"}, ADMIN_SH]
        ),
        "family": add(
            store, "LoginLatency", "fp-c", NOW - timedelta(days=1), [ADMIN_SH], expression=LATENCY_EXPR
        ),
        "unrelated": add(
            store,
            "DiskFull",
            "fp-d",
            NOW - timedelta(days=2),
            [ADMIN_SH],
            expression="node_filesystem_avail_bytes < 1",
        ),
        # a degraded report (the only one): compared on nothing, counted as an incident
        "degraded": add(store, "LoginFailures", "fp-a", NOW - timedelta(days=3), [ADMIN_SH], degraded=True),
        # a case difference that SQLite's LIKE would not see
        "case": add(
            store,
            "LoginFailures",
            "fp-e",
            NOW - timedelta(days=4),
            [{"ip_region": "Shanghai", "user_type": "admin"}],
        ),
    }
    store.reports.save_ticket(ids["same"], "redmine", "12", "OPS-12", "https://redmine.example/issues/12")
    store.reports.save_ticket(ids["same"], "jira", "10012", "OPS-99", "https://jira.example/browse/OPS-99")
    return ids


def like_now(**kw: object) -> Likeness:
    base: dict[str, object] = {
        "alertname": "LoginFailures",
        "causes": (tuple(sorted(ADMIN_SH.items())),),
        "metrics": tuple(expression_metrics(LOGIN_EXPR)),
        "before": NOW,
    }
    return Likeness(**{**base, **kw})  # type: ignore[arg-type]


def test_similar_orders_same_cause_overlap_same_alert_family(store: Store, past: dict[str, int]) -> None:
    contract: HistoryContract = store.history  # the store answers the agent's contract
    summary = contract.similar(like_now(), limit=10)
    got = [(p.incident_id, p.match) for p in summary.similar]
    assert got == [
        (past["same"], "same_cause"),  # the only cause, identical: 1.0
        (past["second"], "same_cause"),  # one of two causes identical
        (past["case"], "overlapping_cause"),  # user_type=admin shared, ip_region differs by case
        (past["overlap"], "overlapping_cause"),
        (past["alert"], "same_alert"),
        (past["family"], "same_family"),
    ], got
    scores = [p.score for p in summary.similar]
    assert scores == sorted(scores, reverse=True) and scores[0] == 1.0
    same = summary.similar[0]
    assert same.root_causes == [ADMIN_SH]
    assert same.summary == "admins in shanghai could not log in after the sso rollout"
    assert same.duration_seconds == 15 * 60 and same.resolved_at is not None
    assert (same.ticket, same.ticket_url) == ("OPS-12", "https://redmine.example/issues/12")  # the first
    assert same.closing_comment is None  # its tracker has not closed it yet
    store.reports.close_ticket(past["same"], "redmine", "Resolved after 15m 00s at 2026-11-20T10:15:00Z.")
    store.reports.close_ticket(past["same"], "nowhere", "a sink that holds no ticket records nothing")
    again = contract.similar(like_now(), limit=10).similar[0]
    assert again.closing_comment == "Resolved after 15m 00s at 2026-11-20T10:15:00Z."
    assert same.report_id and store.reports.get(same.report_id) is not None
    assert summary.similar[-1].ticket is None and summary.similar[-1].duration_seconds is None


def test_similar_limit_before_and_exclude(store: Store, past: dict[str, int]) -> None:
    assert [p.incident_id for p in store.history.similar(like_now(), limit=2).similar] == [
        past["same"],
        past["second"],
    ]
    before = store.history.similar(like_now(before=NOW - timedelta(days=9)))
    assert [p.incident_id for p in before.similar] == [past["same"], past["overlap"]]
    excluded = store.history.similar(like_now(exclude_incident=past["same"]))
    assert past["same"] not in [p.incident_id for p in excluded.similar]
    everything = store.history.similar(like_now(before=None), limit=50)
    assert past["unrelated"] not in [p.incident_id for p in everything.similar]
    assert past["degraded"] not in [p.incident_id for p in everything.similar]


def test_counts(store: Store, past: dict[str, int]) -> None:
    summary = store.history.similar(like_now())
    assert summary.first_seen == NOW - timedelta(days=40)
    # same, overlap, alert, second, degraded, case (not `first`: 40 days ago; not other alerts)
    assert summary.last_30_days == 6
    assert summary.same_cause_30_days == 2  # same and second (not `case`: Shanghai; not the degraded one)
    later = store.history.similar(like_now(before=NOW - timedelta(days=15)))
    assert (later.last_30_days, later.same_cause_30_days) == (2, 1)  # `first` and `same`
    assert store.history.similar(like_now(before=NOW - timedelta(days=50))).first_seen is None
    unknown = store.history.similar(like_now(alertname="NeverFired", metrics=()))
    assert unknown.similar == [] and unknown.first_seen is None and unknown.last_30_days == 0


def test_no_causes_and_no_metrics_is_the_same_alert(store: Store, past: dict[str, int]) -> None:
    summary = store.history.similar(like_now(causes=(), metrics=()), limit=50)
    assert {p.match for p in summary.similar} == {"same_alert"}
    assert summary.same_cause_30_days == 0
    # the most recent first
    assert [p.starts_at for p in summary.similar] == sorted(
        (p.starts_at for p in summary.similar), reverse=True
    )


def test_a_degraded_report_never_overwrites_the_findings(store: Store) -> None:
    t = NOW - timedelta(days=1)
    inc = add(store, "LoginFailures", "fp-x", t, [ADMIN_SH], summary="alpha rollout broke logins")
    reinvestigate(store, inc, [{"ip_region": "guangzhou"}], summary="beta outage", degraded=True)
    with store.session() as s:
        row = s.get(IncidentFinding, inc)
        assert row is not None and row.causes == [ADMIN_SH] and row.summary == "alpha rollout broke logins"
        assert row.cause_keys == "|ip_region=shanghai,user_type=admin|"
        assert row.metrics == ["login_failures_total", "login_attempts_total"]
    assert store.history.search("alpha") == ([inc], 1)
    assert store.history.search("beta") == ([], 0)
    assert store.history.search("guangzhou") == ([], 0)
    # a newer good report replaces the findings and the searchable text
    reinvestigate(store, inc, [{"ip_region": "guangzhou"}], summary="gamma failover")
    assert store.history.search("gamma guangzhou") == ([inc], 1)
    assert store.history.search("alpha") == ([], 0)
    with store.session() as s:
        assert s.scalar(text("SELECT count(*) FROM report_search WHERE incident_id = :i"), {"i": inc}) == 1


def test_search_by_words_labels_and_filters(store: Store, past: dict[str, int]) -> None:
    page = store.incidents.page
    assert store.history.search("rollout") == ([past["same"]], 1)
    assert store.history.search("SSO Rollout") == ([past["same"]], 1)  # case, every word
    assert store.history.search("sso nonsense") == ([], 0)
    assert store.history.search("guangzhou") == ([past["alert"]], 1)  # a root cause's label value
    assert store.history.search("user_type=guest") == ([past["overlap"]], 1)  # a label pair
    assert store.history.search("LoginLatency")[0] == [past["family"]]  # the alert's name
    ids, total = store.history.search("shanghai", limit=2)
    assert total == 6 and len(ids) == 2 and ids == sorted(ids, reverse=True)  # `case` too; newest first
    assert store.history.search("shanghai", limit=2, offset=5)[0] == [past["same"]]
    # integrated in the page of incidents, with the other filters
    rows, total = page(alertname="LoginFailures", text="shanghai")
    assert total == 4 and {r.id for r in rows} == {
        past["same"],
        past["overlap"],
        past["second"],
        past["case"],
    }
    rows, total = page(status="resolved", text="shanghai")
    assert [r.id for r in rows] == [past["same"]]
    assert page(text="   ")[1] == page()[1]  # blank: no filter
    # the alert's labels, exactly
    rows, _ = page(labels=[("alertname", "DiskFull")])
    assert [r.id for r in rows] == [past["unrelated"]]
    assert page(labels=[("alertname", "LoginFailures"), ("alertname", "DiskFull")])[1] == 0
    assert page(labels=[('bad"name', "x")])[1] == 0  # not a label name: matches nothing


def test_hostile_queries_answer(store: Store, past: dict[str, int]) -> None:
    for q in HOSTILE:  # in one test: the seeding of `past` is what takes the time
        ids, total = store.history.search(q)
        assert total == len(ids), q
        store.incidents.page(text=q)


def test_queries_are_quoted_and_punctuation_matches_nothing(store: Store, past: dict[str, int]) -> None:
    assert search_terms('  "*"  NEAR( a\x00b  ·  ') == ["NEAR(", "a", "b"]
    assert fts5_query(['say "hi"', "x"]) == '"say ""hi""" "x"'
    for q in ['"', "*", "((", "-", "...", "\u200b"]:
        assert store.history.search(q) == ([], 0), q
    assert store.history.search("NEAR(shanghai")[1] == 0  # a phrase "near shanghai", not NEAR()
    assert store.history.search('"rollout')[0] == [past["same"]]  # a stray quote is text
    rng = random.Random(5)
    alphabet = "ab \"*():^-+.,\\'~{}[]NEARORANDNOT登ü\x01\u202e"
    for _ in range(300):
        store.history.search("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))))


def test_words_are_read_the_same_way_on_both_backends(store: Store) -> None:
    """FTS5's tokenizer on SQLite, document_words and PostgreSQL's 'simple' configuration: case and
    diacritics aside, punctuation a separator, a term a phrase of its words, a run of Chinese one word."""
    t = NOW - timedelta(hours=1)
    ids = {
        name: add(store, name, f"fp-{i}", t, [], summary=summary)
        for i, (name, summary) in enumerate(
            [
                ("Accents", "the ünïcödé gateway"),
                ("SpacedZh", "用户 登录 失败"),
                ("JoinedZh", "用户登录失败"),
                ("InOrder", "seen as user type guest"),
                ("Reversed", "seen as guest type user"),
                ("Stemmed", "the logins failed"),
            ]
        )
    }

    def found(q: str) -> set[str]:
        hits = set(store.history.search(q)[0])
        return {name for name, i in ids.items() if i in hits}

    assert found("unicode") == found("ÜNICODE") == found("Ünïcödé") == {"Accents"}
    assert found("登录") == {"SpacedZh"} and found("用户登录失败") == {"JoinedZh"}
    assert found("type_guest") == found("type-guest") == {"InOrder"}  # a phrase, in order
    assert found("guest-type") == {"Reversed"} and found("guest user") == {"InOrder", "Reversed"}
    assert found("failed logins") == {"Stemmed"} and found("fail") == found("login") == set()  # no stems
    assert found("gateway nonsense") == set()  # every term


def test_metric_names_of_expressions() -> None:
    assert expression_metrics(LOGIN_EXPR) == ["login_failures_total", "login_attempts_total"]
    assert expression_metrics('{__name__="up", job="x"} == 0') == ["up"]
    assert expression_metrics(None) == [] and expression_metrics("") == []
    # not PromQL the parser takes: read with a regex (no functions, keywords, labels, strings or ranges)
    broken = 'sum by (job) (rate(http_errors_total{code="500"}[5m])) / on(job) http_requests_total >'
    assert expression_metrics(broken) == ["http_errors_total", "http_requests_total"]


def test_the_store_opens_again(database_url: str) -> None:
    url = database_url
    first = Store(url)
    inc = add(first, "LoginFailures", "fp-z", NOW - timedelta(hours=1), [ADMIN_SH], summary="omega")
    first.close()
    again = Store(url)  # the search table exists already
    assert again.history.search("omega") == ([inc], 1)
    again.close()


def _findings(store: Store) -> dict[int, tuple[object, ...]]:
    with store.session() as s:
        rows = s.scalars(select(IncidentFinding)).all()
        return {
            r.incident_id: (
                r.report_id,
                r.causes,
                r.cause_keys,
                r.metrics,
                r.metric_keys,
                r.summary,
                r.starts_at,
            )
            for r in rows
        }


def _empty_the_index(store: Store) -> None:
    """What a database written before server/db/history.py holds: reports, but no index of them."""
    with store.session() as s:
        s.execute(text("DELETE FROM incident_findings"))
        s.execute(text("DELETE FROM report_search"))


def test_backfill_indexes_the_reports_stored_before_the_index(store: Store, past: dict[str, int]) -> None:
    indexed = _findings(store)
    searched = {q: store.history.search(q) for q in ("shanghai", "rollout", "guangzhou", "LoginLatency")}
    similar = store.history.similar(like_now(), limit=10)
    assert len(indexed) == 7  # every analysed incident but the degraded one (and `first`: no report)
    _empty_the_index(store)
    assert store.history.search("shanghai") == ([], 0)
    assert store.history.similar(like_now()).similar == []

    assert store.history.backfill(batch=2) == 7  # four batches
    assert _findings(store) == indexed
    assert {q: store.history.search(q) for q in searched} == searched
    assert store.history.similar(like_now(), limit=10) == similar
    with store.session() as s:
        assert s.scalar(text("SELECT count(*) FROM report_search")) == 7
    # idempotent: nothing left to index; the degraded report stays out
    assert store.history.backfill() == 0
    assert store.history.search("beijing") == ([past["second"]], 1)
    assert past["degraded"] not in _findings(store)


def test_backfill_runs_at_start_up(make_settings: Callable[..., Settings], store: Store) -> None:
    """The server, started on a database whose index is empty, indexes its reports before it answers;
    its incident list shows them, a degraded current report among them (read from its body)."""
    same = add(store, "LoginFailures", "fp-a", NOW - timedelta(days=2), [ADMIN_SH], summary="sso rollout")
    bad = add(
        store, "LoginFailures", "fp-b", NOW - timedelta(days=1), [{"ip_region": "beijing"}], degraded=True
    )
    _empty_the_index(store)
    url = store.engine.url.render_as_string(hide_password=False)
    store.close()
    env, stop = serve(make_settings(database_url=url, llm_provider="none"), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=10) as c:
            found = c.get("/api/v1/incidents", params={"q": "rollout"}).json()
            assert [i["id"] for i in found["items"]] == [same]
            assert c.get("/api/v1/incidents", params={"q": "beijing"}).json()["total"] == 0
            page = c.get("/ui/incidents")
            assert page.status_code == 200, page.text
            assert "ip_region=shanghai, user_type=admin" in page.text  # from the findings
            assert "ip_region=beijing" in page.text and f'href="/ui/incidents/{bad}"' in page.text
    finally:
        stop()
    again = Store(url)
    try:
        assert again.history.backfill() == 0  # the start-up did it
        assert set(_findings(again)) == {same}
    finally:
        again.close()


# ---------------------------------------------------------------- over HTTP


@pytest.fixture
def offline(
    make_settings: Callable[..., Settings], database_url: str
) -> Iterator[tuple[ServerEnv, Store, dict[str, int]]]:
    env, stop = serve(make_settings(database_url=database_url, llm_provider="none"), start_workers=False)
    seeded = Store(env.settings.database_url)
    try:
        ids = {
            "same": add(
                seeded, "LoginFailures", "fp-a", NOW - timedelta(days=3), [ADMIN_SH], summary="sso rollout"
            ),
            "alert": add(
                seeded, "LoginFailures", "fp-b", NOW - timedelta(days=2), [{"ip_region": "guangzhou"}]
            ),
            "bare": add(seeded, "LoginFailures", "fp-a", NOW - timedelta(days=1)),  # no report
            "now": add(seeded, "LoginFailures", "fp-a", NOW, [ADMIN_SH], summary="sso again"),
        }
        yield env, seeded, ids
    finally:
        seeded.close()
        stop()


def test_http_search_and_filters(offline: tuple[ServerEnv, Store, dict[str, int]]) -> None:
    env, _store, ids = offline
    url = f"{env.url}/api/v1/incidents"
    r = httpx.get(url, params={"q": "rollout"})
    assert r.status_code == 200 and [i["id"] for i in r.json()["items"]] == [ids["same"]]
    r = httpx.get(url, params={"q": "sso", "limit": 1})
    assert r.json()["total"] == 2 and [i["id"] for i in r.json()["items"]] == [ids["now"]]
    r = httpx.get(url, params={"label": ["alertname=LoginFailures", "alertname=Other"]})
    assert r.status_code == 200 and r.json()["total"] == 0
    assert httpx.get(url, params={"label": "alertname=LoginFailures"}).json()["total"] == 4
    assert httpx.get(url, params={"q": ""}).json()["total"] == 4
    assert httpx.get(url, params={"q": "x" * 201}).status_code == 422
    assert httpx.get(url, params={"label": "no-equals"}).status_code == 422


def test_http_hostile_queries_are_200(offline: tuple[ServerEnv, Store, dict[str, int]]) -> None:
    env, _store, _ids = offline
    with httpx.Client(base_url=env.url, timeout=10) as c:
        for q in HOSTILE:  # in one test: the server and its seeding are what take the time
            r = c.get("/api/v1/incidents", params={"q": q})
            assert r.status_code == 200, (q, r.text)
            assert r.json()["total"] == len(r.json()["items"]), q


def test_http_similar(offline: tuple[ServerEnv, Store, dict[str, int]]) -> None:
    env, _store, ids = offline
    r = httpx.get(f"{env.url}/api/v1/incidents/{ids['now']}/similar")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(p["incident_id"], p["match"]) for p in body["similar"]] == [
        (ids["same"], "same_cause"),
        (ids["alert"], "same_alert"),
    ]
    assert body["last_30_days"] == 3 and body["same_cause_30_days"] == 1  # before `now`, not itself
    assert body["first_seen"] is not None
    # an incident without findings: compared on its alert alone, with what came before it
    bare = httpx.get(f"{env.url}/api/v1/incidents/{ids['bare']}/similar", params={"limit": 1}).json()
    assert [(p["incident_id"], p["match"]) for p in bare["similar"]] == [(ids["alert"], "same_alert")]
    assert bare["same_cause_30_days"] == 0
    assert httpx.get(f"{env.url}/api/v1/incidents/{2**63 - 1}/similar").status_code == 404
    assert (
        httpx.get(f"{env.url}/api/v1/incidents/{ids['now']}/similar", params={"limit": 51}).status_code == 422
    )
