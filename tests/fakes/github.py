"""A fake GitHub REST API (issues, comments, search) with GitHub's answers and errors.

Errors are `{"message": ..., "documentation_url": ...}`: 401 "Bad credentials", 404 "Not Found",
422 "Validation Failed" / "Invalid request" on a refused body, 400 on an unsupported
`X-GitHub-Api-Version`, and `rate_limited()` queues the 403 with `x-ratelimit-remaining: 0` that a spent
primary rate limit gets.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.api import Answer, FakeAPI, Handler, Request

DOCS = "https://docs.github.com/rest"
VERSIONS = {"2022-11-28", "2026-03-10"}
STATE_REASONS = {"completed", "not_planned", "reopened", "duplicate", None}


def gh_error(code: int, message: str, **extra: Any) -> Answer:
    return Answer(code, {"message": message, "documentation_url": DOCS, **extra, "status": str(code)})


def invalid(field_name: str, message: str) -> Answer:
    error = {"resource": "Issue", "code": "custom", "field": field_name, "message": message}
    return gh_error(422, "Validation Failed", errors=[error])


@dataclass
class Issue:
    number: int
    title: str
    body: str | None
    labels: list[str]
    state: str = "open"
    state_reason: str | None = None
    comments: list[str] = field(default_factory=list)


class FakeGitHub(FakeAPI):
    def __init__(
        self, repo: str = "acme/ops", *, token: str = "ghp_fakeSecretToken123", has_issues: bool = True
    ):
        self.repo = repo
        self.token = token
        self.has_issues = has_issues
        self.issues: dict[int, Issue] = {}
        self._numbers = itertools.count(1)
        super().__init__()

    def routes(self) -> list[tuple[str, str, Handler]]:
        repo = r"/repos/(?P<owner>[^/]+)/(?P<name>[^/]+)"
        issue = repo + r"/issues/(?P<number>\d+)"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", repo, self.get_repo),
            ("POST", repo + "/issues", self.create_issue),
            ("GET", issue, self.get_issue),
            ("PATCH", issue, self.update_issue),
            ("POST", issue + "/comments", self.add_comment),
            ("GET", "/search/issues", self.search),
        ]
        return [(m, p, self._checked(h)) for m, p, h in routes]

    def _checked(self, handler: Handler) -> Handler:
        def check(req: Request) -> Answer:
            version = req.headers.get("x-github-api-version")
            if version is not None and version not in VERSIONS:
                return gh_error(400, f"API version {version} is not supported.")
            auth = req.headers.get("authorization", "")
            if auth not in (f"Bearer {self.token}", f"token {self.token}"):
                return gh_error(401, "Bad credentials")
            if "owner" in req.params and f"{req.params['owner']}/{req.params['name']}" != self.repo:
                return gh_error(404, "Not Found")
            return handler(req)

        return check

    def not_found(self, req: Request) -> Answer:
        return gh_error(404, "Not Found")

    def rate_limited(self, *, reset_in: float = 30, times: int = 1, status: int = 403) -> int:
        """Queue a spent-primary-rate-limit answer; returns the reset time (epoch seconds)."""
        reset = int(time.time() + reset_in)
        headers = {
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "0",
            "x-ratelimit-used": "5000",
            "x-ratelimit-reset": str(reset),
            "x-ratelimit-resource": "core",
        }
        message = "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, ..."
        body = {"message": message, "documentation_url": DOCS}
        self.fail_next(Answer(status, body, headers=headers), times=times)
        return reset

    def issue_json(self, issue: Issue) -> dict[str, Any]:
        base = f"{self.url}/repos/{self.repo}/issues/{issue.number}"
        return {
            "id": 1_000_000 + issue.number,
            "node_id": f"I_{issue.number}",
            "url": base,
            "html_url": f"https://github.com/{self.repo}/issues/{issue.number}",
            "number": issue.number,
            "state": issue.state,
            "state_reason": issue.state_reason,
            "title": issue.title,
            "body": issue.body,
            "labels": [{"name": name} for name in issue.labels],
            "comments": len(issue.comments),
        }

    def _body(self, req: Request) -> Any:
        try:
            return req.json
        except ValueError:
            return None

    def _issue(self, req: Request) -> Issue | None:
        return self.issues.get(int(req.params["number"]))

    def get_repo(self, req: Request) -> Answer:
        return Answer(
            200,
            {
                "id": 1296269,
                "full_name": self.repo,
                "private": True,
                "has_issues": self.has_issues,
                "html_url": f"https://github.com/{self.repo}",
                "permissions": {
                    "admin": False,
                    "maintain": False,
                    "push": True,
                    "triage": True,
                    "pull": True,
                },
            },
        )

    def create_issue(self, req: Request) -> Answer:
        if not self.has_issues:
            return gh_error(410, "Issues are disabled for this repo")
        body = self._body(req)
        if not isinstance(body, dict):
            return gh_error(400, "Problems parsing JSON")
        title = body.get("title")
        if title is None:
            return gh_error(422, 'Invalid request.\n\n"title" wasn\'t supplied.')
        if not isinstance(title, str | int) or not str(title).strip():
            return invalid("title", "title can't be blank")
        if len(str(title)) > 256:
            return invalid("title", "title is too long (maximum is 256 characters)")
        text = body.get("body")
        if text is not None and not isinstance(text, str):
            return gh_error(422, "Invalid request.\n\nFor 'properties/body', is not a string or null.")
        if text is not None and len(text) > 65536:
            return invalid("body", "body is too long (maximum is 65536 characters)")
        labels = body.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            return gh_error(422, "Invalid request.\n\nFor 'properties/labels', is not an array of strings.")
        issue = Issue(next(self._numbers), str(title), text, list(labels))
        self.issues[issue.number] = issue
        return Answer(201, self.issue_json(issue))

    def get_issue(self, req: Request) -> Answer:
        issue = self._issue(req)
        return self.not_found(req) if issue is None else Answer(200, self.issue_json(issue))

    def update_issue(self, req: Request) -> Answer:
        issue = self._issue(req)
        if issue is None:
            return self.not_found(req)
        body = self._body(req)
        if not isinstance(body, dict):
            return gh_error(400, "Problems parsing JSON")
        state = body.get("state", issue.state)
        if state not in ("open", "closed"):
            return gh_error(422, "Invalid request.\n\nFor 'properties/state', is not one of open, closed.")
        reason = body.get("state_reason")
        if reason not in STATE_REASONS:
            return gh_error(422, "Invalid request.\n\nFor 'properties/state_reason', is not a valid value.")
        if state != issue.state:  # state_reason is ignored unless the state changes
            issue.state, issue.state_reason = state, reason
        return Answer(200, self.issue_json(issue))

    def add_comment(self, req: Request) -> Answer:
        issue = self._issue(req)
        if issue is None:
            return self.not_found(req)
        body = self._body(req)
        text = body.get("body") if isinstance(body, dict) else None
        if text is None:
            return gh_error(422, 'Invalid request.\n\n"body" wasn\'t supplied.')
        if not isinstance(text, str) or not text.strip():
            return invalid("body", "body can't be blank")
        if len(text) > 65536:
            return invalid("body", "body is too long (maximum is 65536 characters)")
        issue.comments.append(text)
        n = len(issue.comments)
        return Answer(
            201, {"id": n, "body": text, "html_url": f"https://github.com/{self.repo}/issues/x#c{n}"}
        )

    def search(self, req: Request) -> Answer:
        q = req.arg("q")
        if not q:
            error = {"resource": "Search", "field": "q", "code": "missing"}
            return gh_error(422, "Validation Failed", errors=[error])
        phrases = re.findall(r'"([^"]*)"', q)
        rest = re.sub(r'"[^"]*"', " ", q).split()
        qualifiers = dict(t.split(":", 1) for t in rest if ":" in t)
        words = [t for t in rest if ":" not in t]
        if qualifiers.get("repo") != self.repo:
            return gh_error(
                422,
                "Validation Failed",
                errors=[{"message": "The listed repositories cannot be searched.", "resource": "Search"}],
            )
        if qualifiers.get("is") not in ("issue", "pull-request", "pr"):
            # issues advanced search (the default since 2025-09-04) wants the kind spelled out
            return gh_error(422, "Query must include 'is:issue' or 'is:pull-request'")
        scope = qualifiers.get("in", "title,body").split(",")
        items = []
        for issue in self.issues.values():
            text = " ".join(
                [issue.title if "title" in scope else "", issue.body or "" if "body" in scope else ""]
            )
            if all(p in text for p in phrases) and all(w.lower() in text.lower() for w in words):
                items.append(self.issue_json(issue) | {"score": 1.0})
        return Answer(200, {"total_count": len(items), "incomplete_results": False, "items": items})
