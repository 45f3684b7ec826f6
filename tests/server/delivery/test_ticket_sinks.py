"""The Jira, GitHub and GitLab sinks against loopback fakes that check what the real APIs check.

Each tracker: create (with attachments where the tracker has them), the ticket saved before anything
that can fail after creation, finding a ticket whose save was lost, update comments, resolution (comment
plus close or transition), credentials checks, the retryable and permanent failures, and size limits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from server.delivery.base import DeliveryError, Notice, NoticeCause, TicketRef, TicketSlot
from server.delivery.sinks.github import GitHubConfig, GitHubSink
from server.delivery.sinks.gitlab import GitLabConfig, GitLabSink
from server.delivery.sinks.jira import JiraConfig, JiraSink
from tests.fakes.api import Answer
from tests.fakes.github import FakeGitHub, Issue
from tests.fakes.gitlab import FakeGitLab
from tests.fakes.jira import FakeJira, Transition, jira_error

MARKER = "alertsleuth-3f9a1c2b7d4e5f60-1763700000"
REPORT_URL = "https://alertsleuth.example.com/api/v1/reports/r-42?format=html"
MARKDOWN = (
    "# Root-cause report: LoginFailureRatio\n\n"
    "Login failures rose to 38%.\n\n"
    "| label set | score |\n|---|---|\n| ip_region=上海, user_type=admin | 0.92 |\n\n"
    '```promql\nsum(rate(login_failures_total{job="login"}[5m]))\n```\n'
)
HTML = "<!DOCTYPE html><html><body><h1>Root-cause report</h1></body></html>"
REPORT = {"id": "r-42", "summary": "Login failures rose to 38%."}


def notice(event: str = "firing", **changes: Any) -> Notice:
    base = Notice(
        event=event,  # type: ignore[arg-type]
        incident_id=42,
        marker=MARKER,
        alertname="LoginFailureRatio",
        status="resolved" if event == "resolved" else "firing",
        severity="critical",
        labels={"alertname": "LoginFailureRatio", "ip_region": "上海"},
        title=f"[{'RESOLVED' if event == 'resolved' else 'FIRING'}] LoginFailureRatio: ip_region=上海",
        summary="Login failures rose to 38%, concentrated in ip_region=上海 and user_type=admin.",
        root_causes=[NoticeCause({"ip_region": "上海", "user_type": "admin"}, "92% of the failures", 0.92)],
        localized=True,
        starts_at="2025-11-21T10:00:00Z",
        ends_at="2025-11-21T10:04:05Z" if event == "resolved" else None,
        duration_seconds=245.0 if event == "resolved" else None,
        report_id="r-42",
        markdown=MARKDOWN,
        html=HTML,
        report_json=json.dumps(REPORT),
        report_url=REPORT_URL,
        change="the top root cause moved to ip_region=广州" if event == "update" else None,
    )
    return replace(base, **changes)


class Slots:
    """Ticket slots whose `save` records what was saved, as the outbox persists it."""

    def __init__(self) -> None:
        self.saved: list[TicketRef] = []

    def new(self, ref: TicketRef | None = None) -> TicketSlot:
        return TicketSlot(ref, self.saved.append)

    @property
    def last(self) -> TicketRef:
        assert self.saved, "nothing saved"
        return self.saved[-1]


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def slots() -> Slots:
    return Slots()


def failure(run: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        run()
    return info.value


# =====================================================================================================
# Jira
# =====================================================================================================

CLOUD_TOKEN = "jira-cloud-secret-token"
DC_TOKEN = "jira-dc-secret-pat"


@pytest.fixture(params=["cloud", "datacenter"])
def jira(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    fake = FakeJira(request.param)
    with fake:
        yield fake


def jira_config(fake: FakeJira, **overrides: Any) -> dict[str, Any]:
    auth: dict[str, Any] = (
        {"email": "bot@example.com", "api_token": CLOUD_TOKEN}
        if fake.flavor == "cloud"
        else {"token": DC_TOKEN}
    )
    return {
        "type": "jira",
        "url": fake.url + "/",
        "flavor": fake.flavor,
        "project": "OPS",
        "priorities": {"critical": "Highest", "warning": "Medium"},
        "resolve_transition": "Done",
        **auth,
        **overrides,
    }


def jira_sink(fake: FakeJira, http: httpx.Client, **overrides: Any) -> JiraSink:
    return JiraSink("jira", JiraConfig.model_validate(jira_config(fake, **overrides)), http)


def test_jira_creates_an_issue_with_the_report_attached(
    jira: FakeJira, http: httpx.Client, slots: Slots
) -> None:
    outcome = jira_sink(jira, http).send(notice(), slots.new())

    assert outcome.detail == "created OPS-1 with 2 attachments"
    assert outcome.ticket == slots.last == TicketRef("10001", "OPS-1", f"{jira.url}/browse/OPS-1")
    issue = jira.issues["10001"]
    f = issue.fields
    assert f["project"] == {"key": "OPS"} and f["issuetype"] == {"name": "Task"}
    assert f["summary"] == "[FIRING] LoginFailureRatio: ip_region=上海"
    assert f["labels"] == ["alertsleuth", MARKER]
    assert f["priority"] == {"name": "Highest"}
    # the Markdown goes verbatim inside {noformat}: PromQL's {...} would be a wiki macro otherwise
    assert f["description"].endswith("{noformat}\n" + MARKDOWN + "\n{noformat}")
    assert f"[HTML on alertsleuth|{REPORT_URL}]" in f["description"]
    assert [(a.filename, a.content_type, a.data) for a in issue.attachments] == [
        ("alertsleuth-r-42.html", "text/html", HTML.encode()),
        ("alertsleuth-r-42.json", "application/json", json.dumps(REPORT).encode()),
    ]
    # looked for an existing issue by marker first, on the search endpoint of its flavor
    search = "/rest/api/3/search/jql" if jira.flavor == "cloud" else "/rest/api/2/search"
    (found,) = jira.calls("GET", search)
    assert found.arg("jql") == f'project = "OPS" AND labels = "{MARKER}" ORDER BY created ASC'
    expected_auth = jira.authorization
    assert all(r.headers["authorization"] == expected_auth for r in jira.requests)


def test_jira_saves_the_ticket_before_attaching(jira: FakeJira, http: httpx.Client, slots: Slots) -> None:
    sink = jira_sink(jira, http)
    jira.fail_next(jira_error(503, "Service Unavailable"), path=r"/attachments$")
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and "POST /rest/api/2/issue/10001/attachments: HTTP 503" in str(err)
    assert [r.key for r in slots.saved] == ["OPS-1"]  # saved although the attempt failed

    outcome = sink.send(notice(), slots.new(slots.last))  # the outbox retries with the saved ticket
    assert outcome.detail == "OPS-1 already open for this incident, 2 attachments added"
    assert len(jira.issues) == 1 and jira.issues["10001"].comments == []
    assert [a.filename for a in jira.issues["10001"].attachments] == [
        "alertsleuth-r-42.html",
        "alertsleuth-r-42.json",
    ]
    # once more: nothing is attached twice
    assert sink.send(notice(), slots.new(slots.last)).detail.endswith("0 attachments added")
    assert len(jira.issues["10001"].attachments) == 2


def test_jira_finds_an_issue_whose_ticket_was_lost(jira: FakeJira, http: httpx.Client, slots: Slots) -> None:
    sink = jira_sink(jira, http)
    sink.send(notice(), slots.new())
    outcome = sink.send(notice("update"), slots.new())  # the save of the first attempt was lost
    assert len(jira.issues) == 1
    assert outcome.ticket == slots.last and [r.key for r in slots.saved] == ["OPS-1", "OPS-1"]
    assert outcome.detail.startswith("commented on OPS-1")


def test_jira_comments_a_changed_analysis(jira: FakeJira, http: httpx.Client, slots: Slots) -> None:
    sink = jira_sink(jira, http)
    sink.send(notice(), slots.new())
    new_markdown = MARKDOWN.replace("38%", "41%")
    outcome = sink.send(notice("update", report_id="r-43", markdown=new_markdown), slots.new(slots.last))
    assert outcome.detail == "commented on OPS-1, 2 attachments"
    (comment,) = jira.issues["10001"].comments
    assert comment.startswith(f"*alertsleuth: analysis updated* — [full report|{REPORT_URL}]")
    assert "Changed: the top root cause moved to ip_region=广州" in comment
    assert new_markdown in comment and comment.endswith("{noformat}")
    assert [a.filename for a in jira.issues["10001"].attachments][2:] == [
        "alertsleuth-r-43.html",
        "alertsleuth-r-43.json",
    ]


def test_jira_resolution_comments_and_transitions_by_name(
    jira: FakeJira, http: httpx.Client, slots: Slots
) -> None:
    sink = jira_sink(jira, http, resolve_transition="done")  # names match case-insensitively
    sink.send(notice(), slots.new())
    outcome = sink.send(notice("resolved"), slots.new(slots.last))

    assert outcome.detail == "commented on OPS-1, moved to Done"
    issue = jira.issues["10001"]
    assert issue.comments[-1].startswith("Resolved after 4m 05s at 2025-11-21T10:04:05Z.")
    assert issue.status == "Done"
    (moved,) = jira.calls("POST", r"/transitions$")
    assert moved.json == {"transition": {"id": "31"}}  # "Done", not the first transition offered

    again = sink.send(notice("resolved"), slots.new(slots.last))  # already done: no second transition
    assert (
        again.detail == "commented on OPS-1, already Done" and len(jira.calls("POST", r"/transitions$")) == 1
    )


def test_jira_transition_found_by_target_status_or_refused(http: httpx.Client, slots: Slots) -> None:
    classic = [
        Transition("4", "Start Progress", "In Progress", "indeterminate"),
        Transition("2", "Close Issue", "Closed", "done"),
    ]
    fake = FakeJira("datacenter", transitions=classic)
    with fake:
        sink = jira_sink(fake, http, resolve_transition="Closed")  # the target status' name
        sink.send(notice(), slots.new())
        assert sink.send(notice("resolved"), slots.new(slots.last)).detail.endswith("moved to Closed")

    fake = FakeJira("datacenter", transitions=classic)
    with fake:
        sink = jira_sink(fake, http, resolve_transition="Done")
        sink.send(notice(), slots.new())
        err = failure(lambda: sink.send(notice("resolved"), slots.new(slots.last)))
        assert not err.retryable
        assert "no transition 'Done'" in str(err) and "'Start Progress', 'Close Issue'" in str(err)


def test_jira_resolution_without_a_transition_only_comments(
    jira: FakeJira, http: httpx.Client, slots: Slots
) -> None:
    sink = jira_sink(jira, http, resolve_transition=None)
    sink.send(notice(), slots.new())
    assert sink.send(notice("resolved"), slots.new(slots.last)).detail == "commented on OPS-1"
    assert jira.issues["10001"].status == "To Do" and not jira.calls("GET", r"/transitions$")


def test_jira_resolution_without_a_ticket_is_skipped(
    jira: FakeJira, http: httpx.Client, slots: Slots
) -> None:
    outcome = jira_sink(jira, http).send(notice("resolved"), slots.new())
    assert outcome.skipped and outcome.detail == "no ticket to close"
    assert jira.issues == {} and slots.saved == []


def test_jira_test_checks_credentials_and_project(jira: FakeJira, http: httpx.Client, slots: Slots) -> None:
    outcome = jira_sink(jira, http).send(notice("test"), slots.new())
    assert outcome.detail.startswith(
        "credentials ok: authenticated as alertsleuth bot, project OPS (Operations)"
    )
    assert jira.issues == {} and [r.method for r in jira.requests] == ["GET", "GET"]

    err = failure(lambda: jira_sink(jira, http, issue_type="Incident").send(notice("test"), slots.new()))
    assert not err.retryable and "no issue type 'Incident' (has: Task, Bug)" in str(err)

    err = failure(lambda: jira_sink(jira, http, project="NOPE").send(notice("test"), slots.new()))
    assert not err.retryable and "No project could be found with key 'NOPE'" in str(err)


def test_jira_bad_credentials_fail_without_the_token(
    jira: FakeJira, http: httpx.Client, slots: Slots
) -> None:
    wrong = "wrong-secret-value-123"
    auth = {"api_token": wrong} if jira.flavor == "cloud" else {"token": wrong}
    err = failure(lambda: jira_sink(jira, http, **auth).send(notice("test"), slots.new()))
    assert not err.retryable and "GET /rest/api/2/myself: HTTP 401" in str(err)
    for secret in (wrong, CLOUD_TOKEN, DC_TOKEN):
        assert secret not in str(err)


def test_jira_rate_limit_and_server_errors_are_retryable(
    jira: FakeJira, http: httpx.Client, slots: Slots
) -> None:
    sink = jira_sink(jira, http)
    jira.fail_next(
        Answer(429, {"errorMessages": ["Rate limit exceeded."], "errors": {}}, headers={"Retry-After": "17"})
    )
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and err.retry_after == 17

    jira.fail_next(jira_error(502, "Bad Gateway"), path=r"/rest/api/2/issue$")
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and err.retry_after is None and "POST /rest/api/2/issue: HTTP 502" in str(err)
    assert jira.issues == {} and slots.saved == []


def test_jira_fits_long_reports_and_titles(jira: FakeJira, http: httpx.Client, slots: Slots) -> None:
    long_markdown = "".join(f"| row {i} | {'x' * 60} |\n" for i in range(2000))  # ~140k characters
    long_title = "[FIRING] LoginFailureRatio: " + ", ".join(f"label{i}=value{i}" for i in range(40))
    sink = jira_sink(jira, http)
    sink.send(notice(markdown=long_markdown, title=long_title), slots.new())
    f = jira.issues["10001"].fields
    assert len(f["summary"]) == 255 and f["summary"].endswith("…")
    assert len(f["description"]) <= 32767
    assert f"… shortened to fit; full report: {REPORT_URL}" in f["description"]
    assert f["description"].endswith("\n{noformat}")

    sink.send(notice("update", markdown=long_markdown), slots.new(slots.last))
    (comment,) = jira.issues["10001"].comments
    assert len(comment) <= 32767 and f"full report: {REPORT_URL}" in comment


def test_jira_config_errors_name_the_key(jira: FakeJira) -> None:
    config = jira_config(jira)
    del config["project"]
    with pytest.raises(ValidationError) as info:
        JiraConfig.model_validate(config)
    assert "project" in str(info.value) and "Field required" in str(info.value)

    with pytest.raises(ValidationError) as info:
        JiraConfig.model_validate(
            jira_config(jira, flavor="cloud", email="bot@example.com", api_token=None, token=None)
        )
    assert "flavor cloud needs email and api_token" in str(info.value)

    with pytest.raises(ValidationError) as info:
        JiraConfig.model_validate(
            {
                "type": "jira",
                "url": jira.url,
                "flavor": "datacenter",
                "project": "OPS",
                "api_token": CLOUD_TOKEN,
            }
        )
    message = str(info.value)
    assert "flavor datacenter needs token" in message and CLOUD_TOKEN not in message

    with pytest.raises(ValidationError) as info:
        JiraConfig.model_validate(jira_config(jira, labels=["alert sleuth"]))
    assert "labels" in str(info.value) and "cannot be empty or contain spaces" in str(info.value)

    with pytest.raises(ValidationError) as info:
        JiraConfig.model_validate(jira_config(jira, projekt="OPS"))
    assert "projekt" in str(info.value)


# =====================================================================================================
# GitHub
# =====================================================================================================

GH_TOKEN = "ghp_fakeSecretToken123"


@pytest.fixture
def github() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()
    with fake:
        yield fake


def github_sink(fake: FakeGitHub, http: httpx.Client, **overrides: Any) -> GitHubSink:
    config = {"type": "github", "repo": "acme/ops", "token": GH_TOKEN, "api_url": fake.url, **overrides}
    return GitHubSink("gh", GitHubConfig.model_validate(config), http)


def test_github_creates_an_issue_with_the_report(
    github: FakeGitHub, http: httpx.Client, slots: Slots
) -> None:
    outcome = github_sink(github, http).send(notice(), slots.new())

    ref = TicketRef("1", "acme/ops#1", "https://github.com/acme/ops/issues/1")
    assert outcome.detail == "created acme/ops#1" and outcome.ticket == slots.last == ref
    issue = github.issues[1]
    assert issue.title == "[FIRING] LoginFailureRatio: ip_region=上海" and issue.labels == ["alertsleuth"]
    assert issue.body is not None and issue.body.startswith(f"<!-- alertsleuth:{MARKER} -->\n{MARKDOWN}")
    assert f"HTML and JSON versions: [the full report]({REPORT_URL})" in issue.body
    (search,) = github.calls("GET", "/search/issues")
    assert search.arg("q") == f'"{MARKER}" repo:acme/ops is:issue in:body'
    for r in github.requests:
        assert r.headers["authorization"] == f"Bearer {GH_TOKEN}"
        assert r.headers["accept"] == "application/vnd.github+json"
        assert r.headers["x-github-api-version"] == "2022-11-28"


def test_github_finds_an_issue_whose_ticket_was_lost(
    github: FakeGitHub, http: httpx.Client, slots: Slots
) -> None:
    sink = github_sink(github, http)
    sink.send(notice(), slots.new())
    # an issue that only mentions the marker in passing is not ours
    github.issues[2] = Issue(2, "other", f"see {MARKER}", [])
    outcome = sink.send(notice("update"), slots.new())
    assert len(github.issues) == 2 and outcome.ticket == slots.last and slots.last.key == "acme/ops#1"
    assert len(github.issues[1].comments) == 1 and github.issues[2].comments == []

    assert sink.send(notice(), slots.new(slots.last)).detail == "acme/ops#1 already open for this incident"
    assert len(github.issues) == 2 and len(github.issues[1].comments) == 1


def test_github_comments_a_changed_analysis(github: FakeGitHub, http: httpx.Client, slots: Slots) -> None:
    sink = github_sink(github, http)
    sink.send(notice(), slots.new())
    assert sink.send(notice("update"), slots.new(slots.last)).detail == "commented on acme/ops#1"
    (comment,) = github.issues[1].comments
    assert comment.startswith("**alertsleuth: analysis updated**\n\n**[FIRING] LoginFailureRatio")
    assert "Changed: the top root cause moved to ip_region=广州" in comment
    assert "<details><summary>Full report</summary>\n\n" + MARKDOWN in comment


def test_github_resolution_comments_and_closes(github: FakeGitHub, http: httpx.Client, slots: Slots) -> None:
    sink = github_sink(github, http)
    sink.send(notice(), slots.new())
    outcome = sink.send(notice("resolved"), slots.new(slots.last))
    assert outcome.detail == "commented on and closed acme/ops#1"
    issue = github.issues[1]
    assert issue.comments == ["Resolved after 4m 05s at 2025-11-21T10:04:05Z. — alertsleuth"]
    assert (issue.state, issue.state_reason) == ("closed", "completed")

    sink = github_sink(github, http, close_on_resolve=False)
    sink.send(replace(notice(), marker=MARKER + "-b"), slots.new())
    assert sink.send(notice("resolved"), slots.new(slots.last)).detail == "commented on acme/ops#2"
    assert github.issues[2].state == "open"


def test_github_resolution_without_a_ticket_is_skipped(
    github: FakeGitHub, http: httpx.Client, slots: Slots
) -> None:
    outcome = github_sink(github, http).send(notice("resolved"), slots.new())
    assert outcome.skipped and outcome.detail == "no ticket to close" and github.issues == {}


def test_github_test_checks_credentials(github: FakeGitHub, http: httpx.Client, slots: Slots) -> None:
    outcome = github_sink(github, http).send(notice("test"), slots.new())
    assert outcome.detail == "credentials ok: acme/ops reachable, issues enabled; nothing created"
    assert github.issues == {} and [(r.method, r.path) for r in github.requests] == [
        ("GET", "/repos/acme/ops")
    ]

    err = failure(
        lambda: github_sink(github, http, token="ghp_wrongTokenValue").send(notice("test"), slots.new())
    )
    assert not err.retryable and "GET /repos/acme/ops: HTTP 401" in str(err) and "Bad credentials" in str(err)
    assert "ghp_wrongTokenValue" not in str(err) and GH_TOKEN not in str(err)

    err = failure(lambda: github_sink(github, http, repo="acme/nope").send(notice("test"), slots.new()))
    assert not err.retryable and "HTTP 404" in str(err)

    github.has_issues = False
    err = failure(lambda: github_sink(github, http).send(notice("test"), slots.new()))
    assert not err.retryable and str(err) == "acme/ops: issues are disabled in this repository"


def test_github_rate_limits_are_retryable(github: FakeGitHub, http: httpx.Client, slots: Slots) -> None:
    sink = github_sink(github, http)
    github.rate_limited(reset_in=30)  # primary limit spent: 403 with x-ratelimit-remaining: 0
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and err.retry_after is not None and 25 <= err.retry_after <= 31
    assert "GET /search/issues: HTTP 403" in str(err) and GH_TOKEN not in str(err)

    github.fail_next(  # secondary limit: 403 with retry-after
        Answer(403, {"message": "You have exceeded a secondary rate limit."}, headers={"retry-after": "60"})
    )
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and err.retry_after == 60

    github.rate_limited(reset_in=20, status=429)
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and err.retry_after is not None and 15 <= err.retry_after <= 21

    github.fail_next(Answer(503, {"message": "Service Unavailable"}))
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable

    # a 403 that is not a rate limit stays permanent
    github.fail_next(Answer(403, {"message": "Resource not accessible by personal access token"}))
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert not err.retryable
    assert github.issues == {}


def test_github_fits_long_reports_and_titles(github: FakeGitHub, http: httpx.Client, slots: Slots) -> None:
    long_markdown = "".join(f"| row {i} | {'x' * 60} |\n" for i in range(2000))
    sink = github_sink(github, http)
    sink.send(notice(markdown=long_markdown, title="[FIRING] " + "y" * 400), slots.new())
    issue = github.issues[1]
    assert len(issue.title) == 256 and issue.title.endswith("…")
    assert issue.body is not None and len(issue.body) <= 65536
    assert f"… shortened to fit; [full report]({REPORT_URL})" in issue.body
    assert issue.body.startswith(f"<!-- alertsleuth:{MARKER} -->")

    sink.send(notice("update", markdown=long_markdown), slots.new(slots.last))
    (comment,) = issue.comments
    assert len(comment) <= 65536 and f"[full report]({REPORT_URL})" in comment


def test_github_config_errors_name_the_key() -> None:
    with pytest.raises(ValidationError) as info:
        GitHubConfig.model_validate({"type": "github", "repo": "acme", "token": GH_TOKEN})
    assert "repo" in str(info.value) and "owner/name" in str(info.value) and GH_TOKEN not in str(info.value)
    with pytest.raises(ValidationError) as info:
        GitHubConfig.model_validate({"type": "github", "repo": "acme/ops"})
    assert "token" in str(info.value) and "Field required" in str(info.value)


# =====================================================================================================
# GitLab
# =====================================================================================================

GL_TOKEN = "glpat-fakeSecretToken123"


@pytest.fixture
def gitlab() -> Iterator[FakeGitLab]:
    fake = FakeGitLab()
    with fake:
        yield fake


def gitlab_sink(fake: FakeGitLab, http: httpx.Client, **overrides: Any) -> GitLabSink:
    config = {"type": "gitlab", "url": fake.url, "project": "ops/alerts", "token": GL_TOKEN, **overrides}
    return GitLabSink("gl", GitLabConfig.model_validate(config), http)


def test_gitlab_creates_an_issue_linking_the_uploaded_report(
    gitlab: FakeGitLab, http: httpx.Client, slots: Slots
) -> None:
    outcome = gitlab_sink(gitlab, http, labels=["alertsleuth", "oncall"]).send(notice(), slots.new())

    ref = TicketRef("1", "ops/alerts#1", "https://gitlab.example.com/ops/alerts/-/issues/1")
    assert outcome.detail == "created ops/alerts#1 with 2 attachments" and outcome.ticket == slots.last == ref
    issue = gitlab.issues[1]
    assert issue.labels == ["alertsleuth", "oncall"]
    assert issue.description is not None
    assert issue.description.startswith(f"<!-- alertsleuth:{MARKER} -->\n{MARKDOWN}")
    assert [(u.file.filename, u.file.data) for u in gitlab.uploads] == [
        ("alertsleuth-r-42.html", HTML.encode()),
        ("alertsleuth-r-42.json", json.dumps(REPORT).encode()),
    ]
    for u in gitlab.uploads:
        assert f"[{u.file.filename}](/uploads/{u.secret}/{u.file.filename})" in issue.description
    assert f"[full report]({REPORT_URL})" in issue.description
    # the project path is URL-encoded; the token goes in PRIVATE-TOKEN
    assert all(r.path.startswith("/api/v4/projects/ops%2Falerts") for r in gitlab.requests)
    assert all(r.headers["private-token"] == GL_TOKEN for r in gitlab.requests)
    (search,) = gitlab.calls("GET", r"/issues$")
    assert (search.arg("search"), search.arg("in")) == (MARKER, "description")


def test_gitlab_upload_failure_leaves_no_issue_behind(
    gitlab: FakeGitLab, http: httpx.Client, slots: Slots
) -> None:
    sink = gitlab_sink(gitlab, http, project=42)  # a numeric id works as well
    gitlab.fail_next(Answer(500, {"message": "500 Internal Server Error"}), path=r"/uploads$")
    err = failure(lambda: sink.send(notice(), slots.new()))
    assert err.retryable and "POST /api/v4/projects/42/uploads: HTTP 500" in str(err)
    assert gitlab.issues == {} and slots.saved == []

    gitlab.issues_enabled = False  # the create itself is refused, after the uploads
    assert not failure(lambda: sink.send(notice(), slots.new())).retryable
    assert gitlab.issues == {} and slots.saved == []
    gitlab.issues_enabled = True

    assert sink.send(notice(), slots.new()).detail == "created ops/alerts#1 with 2 attachments"
    assert sink.send(notice(), slots.new(slots.last)).detail == "ops/alerts#1 already open for this incident"
    assert len(gitlab.issues) == 1 and gitlab.issues[1].notes == []


def test_gitlab_finds_an_issue_whose_ticket_was_lost(
    gitlab: FakeGitLab, http: httpx.Client, slots: Slots
) -> None:
    sink = gitlab_sink(gitlab, http)
    sink.send(notice(), slots.new())
    outcome = sink.send(notice("update"), slots.new())
    assert len(gitlab.issues) == 1 and outcome.ticket == slots.last and slots.last.key == "ops/alerts#1"
    assert len(gitlab.issues[1].notes) == 1


def test_gitlab_notes_a_changed_analysis(gitlab: FakeGitLab, http: httpx.Client, slots: Slots) -> None:
    sink = gitlab_sink(gitlab, http)
    sink.send(notice(), slots.new())
    outcome = sink.send(notice("update", report_id="r-43"), slots.new(slots.last))
    assert outcome.detail == "commented on ops/alerts#1, 2 attachments"
    (note,) = gitlab.issues[1].notes
    assert note.startswith("**alertsleuth: analysis updated**")
    assert "Changed: the top root cause moved to ip_region=广州" in note and MARKDOWN in note
    assert "[alertsleuth-r-43.html](/uploads/" in note and "[alertsleuth-r-43.json](/uploads/" in note


def test_gitlab_resolution_notes_and_closes(gitlab: FakeGitLab, http: httpx.Client, slots: Slots) -> None:
    sink = gitlab_sink(gitlab, http)
    sink.send(notice(), slots.new())
    outcome = sink.send(notice("resolved"), slots.new(slots.last))
    assert outcome.detail == "commented on and closed ops/alerts#1"
    assert gitlab.issues[1].notes == ["Resolved after 4m 05s at 2025-11-21T10:04:05Z. — alertsleuth"]
    assert gitlab.issues[1].state == "closed"
    (close,) = gitlab.calls("PUT", r"/issues/1$")
    assert close.json == {"state_event": "close"}

    outcome = gitlab_sink(gitlab, http).send(notice("resolved", marker="alertsleuth-none-1"), slots.new())
    assert outcome.skipped and outcome.detail == "no ticket to close"


def test_gitlab_test_and_failures(gitlab: FakeGitLab, http: httpx.Client, slots: Slots) -> None:
    outcome = gitlab_sink(gitlab, http).send(notice("test"), slots.new())
    assert outcome.detail == "credentials ok: project ops/alerts reachable, issues enabled; nothing created"
    assert gitlab.issues == {} and gitlab.uploads == []

    err = failure(
        lambda: gitlab_sink(gitlab, http, token="glpat-wrongValue").send(notice("test"), slots.new())
    )
    assert not err.retryable and '401 {"message": "401 Unauthorized"}' in str(err)
    assert "glpat-wrongValue" not in str(err) and GL_TOKEN not in str(err)

    err = failure(lambda: gitlab_sink(gitlab, http, project="ops/nope").send(notice("test"), slots.new()))
    assert not err.retryable and "404 Project Not Found" in str(err)

    gitlab.retry_later(7)
    err = failure(lambda: gitlab_sink(gitlab, http).send(notice(), slots.new()))
    assert err.retryable and err.retry_after == 7

    gitlab.fail_next(Answer(503, "Service Unavailable"))
    assert failure(lambda: gitlab_sink(gitlab, http).send(notice(), slots.new())).retryable
    assert gitlab.issues == {}


def test_gitlab_fits_long_reports(gitlab: FakeGitLab, http: httpx.Client, slots: Slots) -> None:
    long_markdown = "".join(f"| row {i} | {'x' * 100} |\n" for i in range(10_000))  # ~1.1M characters
    sink = gitlab_sink(gitlab, http)
    sink.send(notice(markdown=long_markdown, title="[FIRING] " + "z" * 300), slots.new())
    issue = gitlab.issues[1]
    assert len(issue.title) == 255
    assert issue.description is not None and len(issue.description) <= 1_000_000
    assert f"… shortened to fit; [full report]({REPORT_URL})" in issue.description


def test_gitlab_config_errors_name_the_key() -> None:
    with pytest.raises(ValidationError) as info:
        GitLabConfig.model_validate({"type": "gitlab", "token": GL_TOKEN})
    assert "project" in str(info.value) and GL_TOKEN not in str(info.value)
    with pytest.raises(ValidationError) as info:
        GitLabConfig.model_validate(
            {"type": "gitlab", "project": "ops/alerts", "token": GL_TOKEN, "labels": ["a,b"]}
        )
    assert "labels" in str(info.value) and "commas" in str(info.value)
