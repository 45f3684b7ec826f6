"""GitHub Issues: one issue per incident, REST API version 2022-11-28.

The lifecycle (find, create, comment, close) is `TicketSink`'s; this module supplies GitHub's requests.

- Auth: a token (fine-grained with Issues read/write, or classic with `repo`) as `Bearer`.
- Idempotency: the body starts with `<!-- alertsleuth:MARKER -->`; before creating, the sink searches
  (`GET /search/issues`, `"MARKER" repo:o/r is:issue in:body`) and keeps only hits whose body carries that
  exact comment. Search is indexed with a delay, so the ticket saved in the outbox is what prevents
  duplicates in the normal case; the search covers a crash between creating and saving.
- Issues have no attachments: the body is the report Markdown fitted to 65,536 characters, with a line
  saying the HTML and JSON reports are at the report link.
- Rate limits: GitHub answers a spent primary limit with 403 (or 429) and `x-ratelimit-remaining: 0`,
  a secondary limit with 403/429 and maybe `retry-after`; both are retryable here.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, cast

import httpx
from pydantic import ConfigDict, Field, field_validator

from server.delivery.base import DeliveryError, Notice, Outcome, SinkConfig, TicketRef, base_url
from server.delivery.http import call, read_json, retry_after
from server.delivery.message import NO_LINK, analysis_comment, brief, fenced, fit, one_line, resolved_line
from server.delivery.secrets import Secret
from server.delivery.tickets import TicketSink, marker_comment

BODY_LIMIT = 65_536  # issue and comment bodies, characters
TITLE_LIMIT = 256
SECONDARY_WAIT = 60.0  # GitHub: without retry-after or reset, wait at least a minute


class GitHubConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors must not echo tokens

    type: Literal["github"]
    repo: str  # owner/name
    token: Secret
    api_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    labels: list[str] = Field(default_factory=lambda: ["alertsleuth"])
    close_on_resolve: bool = True

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", value):
            raise ValueError("repo must be owner/name")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return base_url(value, "api_url")


class _Recorder:
    """Passes `request` to the client and keeps the response, so a refused request's headers can be read
    after `call()` raised (GitHub's rate limit 403 is only recognisable by them)."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http
        self.response: httpx.Response | None = None

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self.response = self.http.request(method, url, **kwargs)
        return self.response


def _rate_limited(resp: httpx.Response) -> bool:
    if resp.status_code not in (403, 429):
        return False
    if resp.headers.get("x-ratelimit-remaining") == "0" or "retry-after" in resp.headers:
        return True
    return "rate limit" in resp.text.lower()


class GitHubSink(TicketSink):
    kind: ClassVar[str] = "github"
    config_model: ClassVar[type[SinkConfig]] = GitHubConfig
    config: GitHubConfig
    http: httpx.Client

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {
            "Authorization": "Bearer " + self.config.token.get_secret_value(),
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }
        recorder = _Recorder(self.http)
        try:
            return call(
                cast(httpx.Client, recorder),
                method,
                self.config.api_url + path,
                what=f"{method} {path}",
                headers=headers,
                timeout=self.config.timeout,
                **kwargs,
            )
        except DeliveryError as exc:
            resp = recorder.response
            if resp is not None and _rate_limited(resp):
                wait = exc.retry_after if exc.retry_after is not None else retry_after(resp)
                raise DeliveryError(
                    f"{exc} (rate limited)",
                    retryable=True,
                    retry_after=SECONDARY_WAIT if wait is None else wait,
                ) from None
            raise

    def _ref(self, issue: dict[str, Any]) -> TicketRef:
        n = int(issue["number"])
        return TicketRef(id=str(n), key=f"{self.config.repo}#{n}", url=str(issue.get("html_url") or ""))

    @property
    def _issues(self) -> str:
        return f"/repos/{self.config.repo}/issues"

    def _post_comment(self, ref: TicketRef, body: str) -> None:
        self._call("POST", f"{self._issues}/{ref.id}/comments", json={"body": body})

    def note(self, ref: TicketRef, text: str) -> str:
        self._post_comment(ref, fenced(text))
        return f"noted on {ref.key}"

    def _body(self, notice: Notice) -> str:
        where = f"[the full report]({notice.report_url})" if notice.report_url else NO_LINK
        head = marker_comment(notice.marker) + "\n"
        tail = f"\n\n---\n_alertsleuth, incident {notice.incident_id}. HTML and JSON versions: {where}._"
        text = notice.markdown if notice.markdown is not None else brief(notice)
        return (
            head + fit(text, BODY_LIMIT - len(head) - len(tail), link=notice.report_url, unit="chars") + tail
        )

    # --- the ticket operations (the lifecycle is TicketSink.send) -------------------------------

    def find(self, marker: str) -> TicketRef | None:
        q = f'"{marker}" repo:{self.config.repo} is:issue in:body'
        resp = self._call("GET", "/search/issues", params={"q": q, "per_page": 20})
        tag = marker_comment(marker)
        items = read_json(resp, "GET /search/issues").get("items") or []
        hits = [i for i in items if tag in (i.get("body") or "") and "pull_request" not in i]
        if not hits:
            return None
        return self._ref(min(hits, key=lambda i: int(i["number"])))

    def create(self, notice: Notice) -> tuple[TicketRef, str]:
        payload = {
            "title": one_line(notice.title, TITLE_LIMIT),
            "body": self._body(notice),
            "labels": list(self.config.labels),
        }
        resp = self._call("POST", self._issues, json=payload)
        ref = self._ref(read_json(resp, f"POST {self._issues}"))
        return ref, f"created {ref.key}"

    def comment(self, ref: TicketRef, notice: Notice) -> str:
        self._post_comment(ref, analysis_comment(notice, BODY_LIMIT))
        return f"commented on {ref.key}"

    def resolve(self, ref: TicketRef, notice: Notice) -> str:
        self._post_comment(ref, f"{resolved_line(notice)} — alertsleuth")
        if not self.config.close_on_resolve:
            return f"commented on {ref.key}"
        self._call("PATCH", f"{self._issues}/{ref.id}", json={"state": "closed", "state_reason": "completed"})
        return f"commented on and closed {ref.key}"

    def check(self) -> Outcome:
        path = f"/repos/{self.config.repo}"
        repo = read_json(self._call("GET", path), f"GET {path}")
        if repo.get("has_issues") is False:
            raise DeliveryError(
                f"{self.config.repo}: issues are disabled in this repository", retryable=False
            )
        perms = repo.get("permissions") or {}
        can_close = any(perms.get(p) for p in ("admin", "maintain", "push", "triage"))
        note = "" if can_close or not perms else "; the token may not close issues (needs triage or write)"
        name = repo.get("full_name", self.config.repo)
        return Outcome(detail=f"credentials ok: {name} reachable, issues enabled{note}; nothing created")
