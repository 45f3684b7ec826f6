"""GitLab Issues: one issue per incident, REST API v4.

The lifecycle (find, create, comment, close) is `TicketSink`'s; this module supplies GitLab's requests.

- Auth: a personal, project or group access token (scope `api`) in `PRIVATE-TOKEN`.
- Idempotency: the description starts with `<!-- alertsleuth:MARKER -->`; before creating, the sink lists
  the project's issues with `search=MARKER&in=description` and keeps only those carrying that comment.
- Attachments: GitLab uploads belong to the project, not to an issue (`POST /projects/:id/uploads`
  answers with the Markdown that links the file). The HTML and JSON reports are uploaded first and the
  issue is created with those links in its description, so a retry after a failed upload cannot leave a
  second issue behind; updates upload the new report's files and link them from the note.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
from pydantic import ConfigDict, Field, field_validator

from server.delivery.base import DeliveryError, Notice, Outcome, SinkConfig, TicketRef, base_url
from server.delivery.http import call, read_json
from server.delivery.message import NO_LINK, analysis_comment, brief, fenced, fit, one_line, resolved_line
from server.delivery.secrets import Secret
from server.delivery.tickets import TicketSink, marker_comment, report_files

TEXT_LIMIT = 1_000_000  # note bodies (descriptions allow 1,048,576), characters
TITLE_LIMIT = 255


class GitLabConfig(SinkConfig):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors must not echo tokens

    type: Literal["gitlab"]
    url: str = "https://gitlab.com"
    project: str  # numeric id or "group/name"
    token: Secret
    labels: list[str] = Field(default_factory=lambda: ["alertsleuth"])
    close_on_resolve: bool = True

    @field_validator("project", mode="before")
    @classmethod
    def _project(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and not value.strip("/ "):
            raise ValueError('project must be a numeric id or a path such as "group/name"')
        return value.strip("/ ") if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return base_url(value, "url")

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: list[str]) -> list[str]:
        for label in value:
            if not label.strip() or "," in label:
                raise ValueError(f"label {label!r}: GitLab labels cannot be empty or contain commas")
        return value


class GitLabSink(TicketSink):
    kind: ClassVar[str] = "gitlab"
    config_model: ClassVar[type[SinkConfig]] = GitLabConfig
    config: GitLabConfig
    http: httpx.Client

    @property
    def _project_path(self) -> str:
        return "/api/v4/projects/" + quote(self.config.project, safe="")

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return call(
            self.http,
            method,
            self.config.url + path,
            what=f"{method} {path}",
            headers={"PRIVATE-TOKEN": self.config.token.get_secret_value(), "Accept": "application/json"},
            timeout=self.config.timeout,
            **kwargs,
        )

    def _ref(self, issue: dict[str, Any]) -> TicketRef:
        iid = int(issue["iid"])
        key = (issue.get("references") or {}).get("full") or f"{self.config.project}#{iid}"
        return TicketRef(id=str(iid), key=str(key), url=str(issue.get("web_url") or ""))

    def _upload(self, notice: Notice) -> list[str]:
        """Upload the report files; returns the Markdown links GitLab gives for them."""
        links = []
        path = self._project_path + "/uploads"
        for name, data, ctype in report_files(notice):
            upload = read_json(self._call("POST", path, files={"file": (name, data, ctype)}), f"POST {path}")
            links.append(str(upload.get("markdown") or upload.get("url") or name))
        return links

    def _footer(self, notice: Notice, links: list[str]) -> str:
        where = f"[full report]({notice.report_url})" if notice.report_url else NO_LINK
        files = ", ".join(links) if links else "not available"
        return f"\n\n---\n_alertsleuth, incident {notice.incident_id}: {where}; files: {files}._"

    def _description(self, notice: Notice, links: list[str]) -> str:
        head = marker_comment(notice.marker) + "\n"
        tail = self._footer(notice, links)
        text = notice.markdown if notice.markdown is not None else brief(notice)
        return (
            head + fit(text, TEXT_LIMIT - len(head) - len(tail), link=notice.report_url, unit="chars") + tail
        )

    def _note(self, ref: TicketRef, body: str) -> None:
        self._call("POST", f"{self._project_path}/issues/{ref.id}/notes", json={"body": body})

    # --- the ticket operations (the lifecycle is TicketSink.send) -------------------------------

    def note(self, ref: TicketRef, text: str) -> str:
        self._note(ref, fenced(text))
        return f"noted on {ref.key}"

    def find(self, marker: str) -> TicketRef | None:
        path = self._project_path + "/issues"
        params = {"search": marker, "in": "description", "scope": "all", "per_page": 20}
        issues = read_json(self._call("GET", path, params=params), f"GET {path}")
        tag = marker_comment(marker)
        hits = [i for i in issues if tag in (i.get("description") or "")]
        return self._ref(min(hits, key=lambda i: int(i["iid"]))) if hits else None

    def create(self, notice: Notice) -> tuple[TicketRef, str]:
        links = self._upload(notice)  # uploads belong to the project until linked: safe to redo
        path = self._project_path + "/issues"
        payload = {
            "title": one_line(notice.title, TITLE_LIMIT),
            "description": self._description(notice, links),
            "labels": ",".join(self.config.labels),
        }
        ref = self._ref(read_json(self._call("POST", path, json=payload), f"POST {path}"))
        return ref, f"created {ref.key} with {len(links)} attachments"

    def comment(self, ref: TicketRef, notice: Notice) -> str:
        links = self._upload(notice)
        self._note(ref, analysis_comment(notice, TEXT_LIMIT, tail=self._footer(notice, links)))
        return f"commented on {ref.key}, {len(links)} attachments"

    def resolve(self, ref: TicketRef, notice: Notice) -> str:
        self._note(ref, f"{resolved_line(notice)} — alertsleuth")
        if not self.config.close_on_resolve:
            return f"commented on {ref.key}"
        self._call("PUT", f"{self._project_path}/issues/{ref.id}", json={"state_event": "close"})
        return f"commented on and closed {ref.key}"

    def check(self) -> Outcome:
        project = read_json(self._call("GET", self._project_path), f"GET {self._project_path}")
        name = project.get("path_with_namespace") or self.config.project
        if project.get("issues_enabled") is False:
            raise DeliveryError(f"{name}: issues are disabled in this project", retryable=False)
        return Outcome(detail=f"credentials ok: project {name} reachable, issues enabled; nothing created")
