"""A fake GitLab REST API v4 (projects, issues, notes, uploads) with GitLab's answers and errors.

Errors: 401 `{"message": "401 Unauthorized"}` without the right `PRIVATE-TOKEN` (or `Authorization:
Bearer`), 404 `{"message": "404 Project Not Found"}` (also when a project path is not URL-encoded, as on
GitLab, where `group/name` in the path is a different route), 400 `{"error": "title is missing"}` for a
missing parameter and `{"message": {"title": [...]}}` for an invalid one.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from tests.fakes.api import Answer, FakeAPI, Handler, Request
from tests.fakes.jira import FormFile, form_files


def gl_message(status: int, message: Any) -> Answer:
    return Answer(status, {"message": message})


def gl_missing(name: str) -> Answer:
    return Answer(400, {"error": f"{name} is missing"})


@dataclass
class Issue:
    id: int
    iid: int
    title: str
    description: str | None
    labels: list[str]
    state: str = "opened"
    notes: list[str] = field(default_factory=list)


@dataclass
class Upload:
    id: int
    secret: str
    file: FormFile


class FakeGitLab(FakeAPI):
    def __init__(
        self,
        project: str = "ops/alerts",
        *,
        project_id: int = 42,
        token: str = "glpat-fakeSecretToken123",
        issues_enabled: bool = True,
    ) -> None:
        self.project = project
        self.project_id = project_id
        self.token = token
        self.issues_enabled = issues_enabled
        self.issues: dict[int, Issue] = {}  # by iid
        self.uploads: list[Upload] = []
        self._ids = itertools.count(9001)
        self._iids = itertools.count(1)
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        project = r"/api/v4/projects/(?P<project>[^/]+)"
        issue = project + r"/issues/(?P<iid>\d+)"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", project, self.get_project),
            ("GET", project + "/issues", self.list_issues),
            ("POST", project + "/issues", self.create_issue),
            ("PUT", issue, self.update_issue),
            ("POST", issue + "/notes", self.add_note),
            ("POST", project + "/uploads", self.upload),
        ]
        return [(m, p, self._checked(h)) for m, p, h in routes]

    def _checked(self, handler: Handler) -> Handler:
        def check(req: Request) -> Answer:
            token = req.headers.get("private-token")
            if token != self.token and req.headers.get("authorization") != f"Bearer {self.token}":
                return gl_message(401, "401 Unauthorized")
            if unquote(req.params["project"]) not in (self.project, str(self.project_id)):
                return gl_message(404, "404 Project Not Found")
            return handler(req)

        return check

    def not_found(self, req: Request) -> Answer:
        return gl_message(404, "404 Not Found")

    def retry_later(self, seconds: int = 7) -> None:
        """Queue the 429 GitLab's rate limiter answers with."""
        headers = {"Retry-After": str(seconds), "RateLimit-Remaining": "0", "RateLimit-Limit": "2000"}
        self.fail_next(Answer(429, "Retry later\n", headers=headers, content_type="text/plain"))

    def issue_json(self, issue: Issue) -> dict[str, Any]:
        return {
            "id": issue.id,
            "iid": issue.iid,
            "project_id": self.project_id,
            "title": issue.title,
            "description": issue.description,
            "state": issue.state,
            "labels": issue.labels,
            "web_url": f"https://gitlab.example.com/{self.project}/-/issues/{issue.iid}",
            "references": {
                "short": f"#{issue.iid}",
                "relative": f"#{issue.iid}",
                "full": f"{self.project}#{issue.iid}",
            },
            "user_notes_count": len(issue.notes),
        }

    def _body(self, req: Request) -> dict[str, Any] | None:
        if not req.headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            body = req.json
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _issue(self, req: Request) -> Issue | None:
        return self.issues.get(int(req.params["iid"]))

    def get_project(self, req: Request) -> Answer:
        return Answer(
            200,
            {
                "id": self.project_id,
                "path_with_namespace": self.project,
                "web_url": f"https://gitlab.example.com/{self.project}",
                "issues_enabled": self.issues_enabled,
            },
        )

    def list_issues(self, req: Request) -> Answer:
        search = req.arg("search")
        scope = (req.arg("in") or "title,description").split(",")
        if any(s not in ("title", "description") for s in scope):
            return Answer(400, {"error": "in does not have a valid value"})
        found = []
        for issue in self.issues.values():
            text = " ".join(
                [
                    issue.title if "title" in scope else "",
                    issue.description or "" if "description" in scope else "",
                ]
            )
            if search is None or search.lower() in text.lower():
                found.append(self.issue_json(issue))
        per_page = int(req.arg("per_page") or 20)
        return Answer(200, sorted(found, key=lambda i: -i["iid"])[:per_page])

    def create_issue(self, req: Request) -> Answer:
        if not self.issues_enabled:
            return gl_message(403, "403 Forbidden")
        body = self._body(req)
        if body is None:
            return gl_missing("title")
        title = body.get("title")
        if title is None:
            return gl_missing("title")
        if not isinstance(title, str) or not title.strip():
            return gl_message(400, {"title": ["can't be blank"]})
        if len(title) > 255:
            return gl_message(400, {"title": ["is too long (maximum is 255 characters)"]})
        description = body.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 1_048_576):
            return gl_message(400, {"description": ["is too long (maximum is 1048576 characters)"]})
        labels = body.get("labels", "")
        if isinstance(labels, str):
            names = [x.strip() for x in labels.split(",") if x.strip()]
        elif isinstance(labels, list) and all(isinstance(x, str) for x in labels):
            names = labels
        else:
            return Answer(400, {"error": "labels is invalid"})
        issue = Issue(next(self._ids), next(self._iids), title, description, names)
        self.issues[issue.iid] = issue
        return Answer(201, self.issue_json(issue))

    def update_issue(self, req: Request) -> Answer:
        issue = self._issue(req)
        if issue is None:
            return gl_message(404, "404 Not found")
        body = self._body(req) or {}
        event = body.get("state_event")
        if event is None and not (set(body) & {"title", "description", "labels"}):
            return Answer(
                400,
                {
                    "error": "title, description, labels, state_event, ... are missing, "
                    "at least one parameter must be provided"
                },
            )
        if event is not None:
            if event not in ("close", "reopen"):
                return Answer(400, {"error": "state_event does not have a valid value"})
            issue.state = "closed" if event == "close" else "opened"
        return Answer(200, self.issue_json(issue))

    def add_note(self, req: Request) -> Answer:
        issue = self._issue(req)
        if issue is None:
            return gl_message(404, "404 Not found")
        body = self._body(req)
        text = body.get("body") if body else None
        if text is None:
            return gl_missing("body")
        if not isinstance(text, str) or not text.strip():
            return gl_message(400, {"note": ["can't be blank"]})
        if len(text) > 1_000_000:
            return gl_message(400, {"note": ["is too long (maximum is 1000000 characters)"]})
        issue.notes.append(text)
        return Answer(201, {"id": 500 + len(issue.notes), "body": text, "noteable_iid": issue.iid})

    def upload(self, req: Request) -> Answer:
        parts = form_files(req)
        files = [p for p in parts or [] if p.field == "file" and p.filename]
        if not files:
            return gl_missing("file")
        f = files[0]
        up = Upload(len(self.uploads) + 1, f"{len(self.uploads) + 1:032x}", f)
        self.uploads.append(up)
        url = f"/uploads/{up.secret}/{f.filename}"
        alt = (f.filename or "").rsplit(".", 1)[0]
        image = f.content_type.startswith("image/")
        return Answer(
            201,
            {
                "id": up.id,
                "alt": alt,
                "url": url,
                "full_path": f"/-/project/{self.project_id}{url}",
                "markdown": f"![{alt}]({url})" if image else f"[{f.filename}]({url})",
            },
        )
