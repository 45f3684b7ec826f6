"""Redmine issues through its REST API (https://www.redmine.org/projects/redmine/wiki/Rest_api).

One issue per incident: created with the report as description and the HTML and JSON reports
attached (uploaded to /uploads.json first, then referenced by token); a changed analysis adds a note
with the new report attached; resolution adds a note with the duration and sets `close_status`.
The incident's marker is written into the description, and an issue is looked up by it before one is
created, so a retry after a crash never opens a second issue. The lifecycle is `TicketSink`'s
(server/delivery/tickets.py); this module supplies Redmine's requests.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from server.delivery.base import DeliveryError, Notice, Outcome, SinkConfig, TicketRef
from server.delivery.http import call
from server.delivery.message import brief, duration, fenced, fit, one_line, resolved_line
from server.delivery.secrets import Secret
from server.delivery.tickets import TicketSink, report_files

DESCRIPTION_LIMIT = 60_000  # Redmine stores text columns; MySQL's TEXT is 65,535 bytes
SUBJECT_LIMIT = 255  # characters


class RedmineConfig(SinkConfig):
    type: Literal["redmine"]
    url: str
    api_key: Secret
    project: str  # identifier ("ops") or numeric id
    tracker: str | None = None  # tracker name; None: the project's default
    close_status: str | None = "Closed"  # status name set on resolution; None: only add a note
    formatting: Literal["markdown", "textile"] = "markdown"  # Redmine's text formatting setting
    attach: bool = True  # attach the HTML and JSON reports

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("an http(s) URL, e.g. https://redmine.example.com")
        return value.rstrip("/")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a project identifier (e.g. ops) or numeric id")
        return value.strip()


class RedmineSink(TicketSink):
    kind = "redmine"
    config_model = RedmineConfig
    config: RedmineConfig

    def _url(self, path: str) -> str:
        return self.config.url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        return {"X-Redmine-API-Key": self.config.api_key.get_secret_value()}

    def _req(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = call(
            self.http,
            method,
            self._url(path),
            what=f"{method} {path.split('?')[0]}",
            headers={**self._headers(), **kwargs.pop("headers", {})},
            timeout=self.config.timeout,
            **kwargs,
        )
        return resp.json() if resp.content and "json" in resp.headers.get("content-type", "") else None

    def _text(self, markdown: str) -> str:
        if self.config.formatting == "textile":
            return "<pre>\n" + markdown.replace("</pre>", "&lt;/pre&gt;") + "\n</pre>"
        return markdown

    def _ref(self, issue_id: int | str) -> TicketRef:
        return TicketRef(str(issue_id), f"#{issue_id}", self._url(f"/issues/{issue_id}"))

    def _named_id(self, path: str, key: str, name: str, noun: str) -> int:
        items = (self._req("GET", path) or {}).get(key) or []
        for item in items:
            if str(item.get("name", "")).casefold() == name.casefold():
                return int(item["id"])
        known = ", ".join(str(i.get("name")) for i in items)
        raise DeliveryError(f"Redmine has no {noun} named {name!r} (has: {known})", retryable=False)

    def _uploads(self, notice: Notice) -> list[dict[str, str]]:
        if not self.config.attach or not notice.report_id:
            return []
        files = []
        for name, body, ctype in report_files(notice):
            token = self._req(
                "POST",
                "/uploads.json",
                params={"filename": name},
                content=body,
                headers={"Content-Type": "application/octet-stream"},
            )["upload"]["token"]
            files.append({"token": token, "filename": name, "content_type": ctype})
        return files

    def _description(self, notice: Notice) -> str:
        text = notice.markdown or brief(notice)
        footer = f"\n\n---\nalertsleuth incident {notice.incident_id} · marker {notice.marker}"
        body = fit(text, DESCRIPTION_LIMIT - len(footer), link=notice.report_url, unit="chars")
        return self._text(body) + footer

    def _note(self, ref: TicketRef, notes: str, **fields: Any) -> None:
        self._req("PUT", f"/issues/{ref.id}.json", json={"issue": {"notes": notes, **fields}})

    def _close_status_id(self, name: str) -> int:
        return self._named_id("/issue_statuses.json", "issue_statuses", name, "issue status")

    # ---------------------------------------------------------------- ticket operations (TicketSink.send)

    def find(self, marker: str) -> TicketRef | None:
        found = self._req(
            "GET",
            "/issues.json",
            params={"project_id": self.config.project, "status_id": "*", "description": f"~{marker}"},
        )
        issues = (found or {}).get("issues") or []
        return self._ref(issues[0]["id"]) if issues else None

    def create(self, notice: Notice) -> tuple[TicketRef, str]:
        issue: dict[str, Any] = {
            "project_id": self.config.project,
            "subject": one_line(notice.title, SUBJECT_LIMIT),
            "description": self._description(notice),
        }
        if self.config.tracker:
            issue["tracker_id"] = self._named_id("/trackers.json", "trackers", self.config.tracker, "tracker")
        uploads = self._uploads(notice)  # uploads are unattached until referenced: safe to redo
        if uploads:
            issue["uploads"] = uploads
        created = self._req("POST", "/issues.json", json={"issue": issue})
        ref = self._ref(created["issue"]["id"])
        return ref, f"created {ref.key} with {len(uploads)} attachments"

    def comment(self, ref: TicketRef, notice: Notice) -> str:
        uploads = self._uploads(notice)
        head = f"Analysis changed: {notice.change}\n\n" if notice.change else "New analysis.\n\n"
        body = fit(notice.markdown or brief(notice), DESCRIPTION_LIMIT, link=notice.report_url, unit="chars")
        self._note(ref, self._text(head + body), **({"uploads": uploads} if uploads else {}))
        return f"commented on {ref.key} with {len(uploads)} attachments"

    def note(self, ref: TicketRef, text: str) -> str:
        self._note(ref, self._text(fenced(text)) if self.config.formatting != "textile" else self._text(text))
        return f"noted on {ref.key}"

    def resolve(self, ref: TicketRef, notice: Notice) -> str:
        fields: dict[str, Any] = {}
        if self.config.close_status:
            fields["status_id"] = self._close_status_id(self.config.close_status)
        self._note(ref, self._text(resolved_line(notice)), **fields)
        done = f"set to {self.config.close_status}" if self.config.close_status else "noted"
        lasted = f" after {duration(notice.duration_seconds)}" if notice.duration_seconds else ""
        return f"{ref.key} resolved{lasted}, {done}"

    def check(self) -> Outcome:
        user = (self._req("GET", "/users/current.json") or {}).get("user", {})
        project = (self._req("GET", f"/projects/{self.config.project}.json") or {}).get("project", {})
        if self.config.close_status:
            self._close_status_id(self.config.close_status)
        return Outcome(
            f"credentials ok: user {user.get('login', '?')}, project {project.get('name', '?')}"
            " (nothing created)"
        )
