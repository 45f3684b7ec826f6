"""Jira (Cloud and Data Center): one issue per incident, REST API v2.

The lifecycle (find, create, comment, transition) is `TicketSink`'s; this module supplies Jira's
requests.

- Auth: Cloud takes Basic `email:api_token`; Data Center a personal access token as `Bearer`.
- Idempotency: the incident's marker is one of the issue's labels; before creating, the sink looks for an
  issue with `labels = "<marker>"` (Cloud: `/rest/api/3/search/jql`, the replacement of the removed
  `/rest/api/2/search`; Data Center: `/rest/api/2/search`). Cloud's JQL search is eventually consistent,
  so the ticket saved in the outbox, not the search, is what prevents duplicates in the normal case.
- Text: v2 takes wiki markup, where `{...}` (every PromQL label matcher) is a macro and `[`/`|` are links.
  The report Markdown is therefore sent verbatim inside `{noformat}`, fitted to Jira's 32,767 characters;
  the HTML and JSON reports are attached for reading.
- Attachments need an existing issue: they are added after it is created and saved, and a retried
  firing notice, or an update, adds only those not there yet.
"""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar, Literal

import httpx
from pydantic import ConfigDict, Field, field_validator, model_validator

from server.delivery.base import DeliveryError, Notice, Outcome, SinkConfig, TicketRef, base_url
from server.delivery.http import call, read_json
from server.delivery.message import NO_LINK, analysis_comment, brief, fit, one_line, resolved_line
from server.delivery.secrets import Secret
from server.delivery.tickets import TicketSink, report_files

TEXT_LIMIT = 32_767  # description and comment body, characters
SUMMARY_LIMIT = 255
API = "/rest/api/2"


class JiraConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors must not echo tokens

    type: Literal["jira"]
    url: str  # https://example.atlassian.net or https://jira.example.com
    flavor: Literal["cloud", "datacenter"]
    email: str | None = None  # cloud
    api_token: Secret | None = None  # cloud
    token: Secret | None = None  # datacenter: personal access token
    project: str  # project key, e.g. OPS
    issue_type: str = "Task"
    labels: list[str] = Field(default_factory=lambda: ["alertsleuth"])
    priorities: dict[str, str] = Field(default_factory=dict)  # alert severity -> Jira priority name
    resolve_transition: str | None = None  # e.g. "Done"; None: resolved notices only comment

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return base_url(value, "url")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("project must be a Jira project key, e.g. OPS")
        return value.strip()

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not label or re.search(r"\s", label):
                raise ValueError(f"label {label!r}: Jira labels cannot be empty or contain spaces")
        return value

    @model_validator(mode="after")
    def _auth(self) -> JiraConfig:
        if self.flavor == "cloud":
            if not self.email or self.api_token is None:
                raise ValueError("flavor cloud needs email and api_token")
            if self.token is not None:
                raise ValueError("token is for flavor datacenter; cloud uses email and api_token")
        else:
            if self.token is None:
                raise ValueError("flavor datacenter needs token (a personal access token)")
            if self.email or self.api_token is not None:
                raise ValueError("email and api_token are for flavor cloud; datacenter uses token")
        return self


def noformat(text: str) -> str:
    """`text` shown verbatim: nothing inside {noformat} is wiki markup, except the closing tag itself."""
    return "{noformat}\n" + text + "\n{noformat}"


def _verbatim(text: str) -> str:
    return text.replace("{noformat}", "{ noformat}")


def _wiki_link(url: str | None, text: str) -> str:
    return f"[{text}|{url}]" if url else NO_LINK


class JiraSink(TicketSink):
    kind: ClassVar[str] = "jira"
    config_model: ClassVar[type[SinkConfig]] = JiraConfig
    config: JiraConfig
    http: httpx.Client

    # --- plumbing ---------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        c = self.config
        if c.flavor == "cloud":
            assert c.email and c.api_token is not None
            raw = f"{c.email}:{c.api_token.get_secret_value()}".encode()
            auth = "Basic " + base64.b64encode(raw).decode("ascii")
        else:
            assert c.token is not None
            auth = "Bearer " + c.token.get_secret_value()
        return {"Authorization": auth, "Accept": "application/json"}

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers(), **kwargs.pop("headers", {})}
        return call(
            self.http,
            method,
            self.config.url + path,
            what=f"{method} {path}",
            headers=headers,
            timeout=self.config.timeout,
            **kwargs,
        )

    def _ref(self, issue_id: str, key: str) -> TicketRef:
        return TicketRef(id=issue_id, key=key, url=f"{self.config.url}/browse/{key}")

    # --- requests and texts -----------------------------------------------------------------------

    def _description(self, notice: Notice) -> str:
        files = ", ".join(name for name, _, _ in report_files(notice)) or "none"
        head = (
            f"Root-cause report by alertsleuth for incident {notice.incident_id}. "
            f"Full report: {_wiki_link(notice.report_url, 'HTML on alertsleuth')}. Attached: {files}.\n\n"
        )
        text = _verbatim(notice.markdown if notice.markdown is not None else brief(notice, "text"))
        budget = TEXT_LIMIT - len(head) - len(noformat(""))
        return head + noformat(fit(text, budget, link=notice.report_url, unit="chars", style="text"))

    def _analysis_comment(self, notice: Notice) -> str:
        """The brief and, below a rule, the report Markdown, both inside one {noformat} block."""
        head = f"*alertsleuth: analysis updated* — {_wiki_link(notice.report_url, 'full report')}\n\n"
        return analysis_comment(
            notice,
            TEXT_LIMIT,
            head=head + "{noformat}\n",
            block=("\n\n" + "-" * 40 + "\n\n", ""),
            tail="\n{noformat}",
            style="text",
            escape=_verbatim,
        )

    def _post_comment(self, ref: TicketRef, body: str) -> None:
        self._call("POST", f"{API}/issue/{ref.id}/comment", json={"body": body})

    def _issue(self, ref: TicketRef, fields: str) -> dict[str, Any]:
        resp = self._call("GET", f"{API}/issue/{ref.id}", params={"fields": fields})
        data = read_json(resp, f"GET {API}/issue/{ref.id}")
        return dict(data.get("fields") or {})

    def _attach(self, ref: TicketRef, notice: Notice, *, skip_present: bool) -> int:
        files = report_files(notice)
        if files and skip_present:  # a retry of the same report must not attach it twice
            present = {a.get("filename") for a in self._issue(ref, "attachment").get("attachment") or []}
            files = [f for f in files if f[0] not in present]
        if not files:
            return 0
        self._call(
            "POST",
            f"{API}/issue/{ref.id}/attachments",
            headers={"X-Atlassian-Token": "no-check"},
            files=[("file", f) for f in files],
        )
        return len(files)

    def _transition(self, ref: TicketRef, name: str) -> str:
        status = self._issue(ref, "status").get("status") or {}
        if (status.get("statusCategory") or {}).get("key") == "done":
            return f"already {status.get('name', 'done')}"
        path = f"{API}/issue/{ref.id}/transitions"
        transitions = read_json(self._call("GET", path), f"GET {path}").get("transitions") or []
        wanted = name.casefold()
        chosen = next((t for t in transitions if str(t.get("name", "")).casefold() == wanted), None)
        if chosen is None:  # also accept the target status' name ("Done" for "Close Issue" → Done)
            chosen = next(
                (t for t in transitions if str((t.get("to") or {}).get("name", "")).casefold() == wanted),
                None,
            )
        if chosen is None:
            names = ", ".join(repr(t.get("name")) for t in transitions) or "none"
            raise DeliveryError(
                f"{ref.key}: no transition {name!r} from status {status.get('name')!r} (available: {names})",
                retryable=False,
            )
        self._call("POST", path, json={"transition": {"id": str(chosen["id"])}})
        return f"moved to {(chosen.get('to') or {}).get('name') or chosen.get('name')}"

    # --- the ticket operations (the lifecycle is TicketSink.send) -------------------------------

    def find(self, marker: str) -> TicketRef | None:
        escaped = marker.replace("\\", "\\\\").replace('"', '\\"')
        project = self.config.project.replace('"', '\\"')
        jql = f'project = "{project}" AND labels = "{escaped}" ORDER BY created ASC'
        path = "/rest/api/3/search/jql" if self.config.flavor == "cloud" else f"{API}/search"
        resp = self._call("GET", path, params={"jql": jql, "fields": "summary", "maxResults": 1})
        issues = read_json(resp, f"GET {path}").get("issues") or []
        if not issues:
            return None
        issue = issues[0]
        return self._ref(str(issue["id"]), str(issue.get("key") or issue["id"]))

    def create(self, notice: Notice) -> tuple[TicketRef, str]:
        c = self.config
        fields: dict[str, Any] = {
            "project": {"key": c.project},
            "issuetype": {"name": c.issue_type},
            "summary": one_line(notice.title, SUMMARY_LIMIT),  # Jira refuses line breaks in a summary
            "description": self._description(notice),
            "labels": [*c.labels, notice.marker],
        }
        if notice.severity and notice.severity in c.priorities:
            fields["priority"] = {"name": c.priorities[notice.severity]}
        resp = self._call("POST", f"{API}/issue", json={"fields": fields})
        data = read_json(resp, f"POST {API}/issue")
        ref = self._ref(str(data["id"]), str(data["key"]))
        return ref, f"created {ref.key}"

    def after_create(self, ref: TicketRef, notice: Notice, detail: str) -> str:
        n = self._attach(ref, notice, skip_present=False)  # attachments need the issue, saved first
        return f"{detail} with {n} attachments"

    def already_open(self, ref: TicketRef, notice: Notice) -> str:
        n = self._attach(ref, notice, skip_present=True)  # a retry after a failed attach: finish it
        return f"{ref.key} already open for this incident, {n} attachments added"

    def comment(self, ref: TicketRef, notice: Notice) -> str:
        self._post_comment(ref, self._analysis_comment(notice))
        n = self._attach(ref, notice, skip_present=True)
        return f"commented on {ref.key}, {n} attachments"

    def note(self, ref: TicketRef, text: str) -> str:
        self._post_comment(ref, "{noformat}\n" + text.replace("{noformat}", "{ noformat}") + "\n{noformat}")
        return f"noted on {ref.key}"

    def resolve(self, ref: TicketRef, notice: Notice) -> str:
        text = f"{resolved_line(notice)} — alertsleuth, {_wiki_link(notice.report_url, 'full report')}"
        self._post_comment(ref, text)
        if self.config.resolve_transition is None:
            return f"commented on {ref.key}"
        moved = self._transition(ref, self.config.resolve_transition)
        return f"commented on {ref.key}, {moved}"

    def check(self) -> Outcome:
        me = read_json(self._call("GET", f"{API}/myself"), f"GET {API}/myself")
        path = f"{API}/project/{self.config.project}"
        project = read_json(self._call("GET", path), f"GET {path}")
        types = [str(t.get("name")) for t in project.get("issueTypes") or []]
        if types and self.config.issue_type not in types:
            raise DeliveryError(
                f"project {project.get('key')}: no issue type {self.config.issue_type!r} "
                f"(has: {', '.join(types)})",
                retryable=False,
            )
        who = me.get("displayName") or me.get("name") or me.get("accountId") or "?"
        return Outcome(
            detail=f"credentials ok: authenticated as {who}, project {project.get('key')} "
            f"({project.get('name')}); nothing created"
        )
