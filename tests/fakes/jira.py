"""A fake Jira (Cloud or Data Center) speaking the REST API v2 shapes the Jira sink uses.

Checks what the real one checks and answers as it answers: `{"errorMessages": [...], "errors": {...}}`
on a refused body, 401 without the right credentials (Cloud: Basic email:api_token; Data Center:
Bearer personal access token), 403 "XSRF check failed" on an attachment without
`X-Atlassian-Token: no-check`, 410 on Cloud's removed `/rest/api/2/search`.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import itertools
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakes.api import Answer, FakeAPI, Handler, Request


@dataclass
class FormFile:
    field: str
    filename: str | None
    content_type: str
    data: bytes


def form_files(req: Request) -> list[FormFile] | None:
    """The parts of a multipart/form-data body, or None when the body is not multipart."""
    ctype = req.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data") or "boundary=" not in ctype:
        return None
    raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    if not msg.is_multipart():
        return None
    parts = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append(
            FormFile(
                field=str(name or ""),
                filename=part.get_filename(),
                content_type=part.get_content_type(),
                data=payload if isinstance(payload, bytes) else b"",
            )
        )
    return parts


def jira_error(status: int, *messages: str, **errors: str) -> Answer:
    return Answer(status, {"errorMessages": list(messages), "errors": errors})


@dataclass
class Transition:
    id: str
    name: str
    to: str  # status name
    category: str  # new | indeterminate | done


@dataclass
class Issue:
    id: str
    key: str
    fields: dict[str, Any]
    status: str = "To Do"
    category: str = "new"
    comments: list[str] = field(default_factory=list)
    attachments: list[FormFile] = field(default_factory=list)


DEFAULT_TRANSITIONS = [
    Transition("11", "To Do", "To Do", "new"),
    Transition("21", "In Progress", "In Progress", "indeterminate"),
    Transition("31", "Done", "Done", "done"),
    Transition("41", "Won't Do", "Won't Do", "done"),
]


class FakeJira(FakeAPI):
    def __init__(
        self,
        flavor: Literal["cloud", "datacenter"] = "cloud",
        *,
        email: str = "bot@example.com",
        api_token: str = "jira-cloud-secret-token",
        token: str = "jira-dc-secret-pat",
        project: str = "OPS",
        issue_types: tuple[str, ...] = ("Task", "Bug"),
        priorities: tuple[str, ...] = ("Highest", "High", "Medium", "Low"),
        transitions: list[Transition] | None = None,
    ) -> None:
        self.flavor = flavor
        self.project = project
        self.issue_types = issue_types
        self.priorities = priorities
        self.transitions = transitions if transitions is not None else list(DEFAULT_TRANSITIONS)
        if flavor == "cloud":
            basic = base64.b64encode(f"{email}:{api_token}".encode()).decode()
            self.authorization = f"Basic {basic}"
        else:
            self.authorization = f"Bearer {token}"
        self.issues: dict[str, Issue] = {}  # by id
        self._ids = itertools.count(10001)
        self._numbers = itertools.count(1)
        super().__init__()

    # --- routing ----------------------------------------------------------------------------------

    def routes(self) -> list[tuple[str, str, Handler]]:
        api = "/rest/api/2"
        issue = api + r"/issue/(?P<issue>[^/]+)"
        routes: list[tuple[str, str, Handler]] = [
            ("GET", api + "/myself", self.myself),
            ("GET", api + r"/project/(?P<project>[^/]+)", self.get_project),
            ("POST", api + "/issue", self.create_issue),
            ("GET", issue, self.get_issue),
            ("POST", issue + "/comment", self.add_comment),
            ("POST", issue + "/attachments", self.add_attachments),
            ("GET", issue + "/transitions", self.get_transitions),
            ("POST", issue + "/transitions", self.do_transition),
            ("GET", api + "/search", self.search_v2),
            ("GET", "/rest/api/3/search/jql", self.search_jql),
        ]
        return [(m, p, self._authenticated(h)) for m, p, h in routes]

    def _authenticated(self, handler: Handler) -> Handler:
        def check(req: Request) -> Answer:
            if req.headers.get("authorization") != self.authorization:
                return jira_error(
                    401, "You are not authenticated. Authentication required to perform this operation."
                )
            return handler(req)

        return check

    def not_found(self, req: Request) -> Answer:
        return jira_error(404, f"null for uri: {req.path}")

    def _issue(self, key_or_id: str) -> Issue | None:
        return self.issues.get(key_or_id) or next(
            (i for i in self.issues.values() if i.key == key_or_id), None
        )

    def _no_issue(self) -> Answer:
        return jira_error(404, "Issue does not exist or you do not have permission to see it.")

    def _body(self, req: Request) -> Any:
        if not req.headers.get("content-type", "").startswith("application/json"):
            return None
        try:
            return req.json
        except ValueError:
            return None

    def issue_json(self, issue: Issue, fields: list[str] | None = None) -> dict[str, Any]:
        everything = {
            **issue.fields,
            "status": {"name": issue.status, "statusCategory": {"key": issue.category}},
            "attachment": [
                {"id": str(n), "filename": a.filename, "size": len(a.data), "mimeType": a.content_type}
                for n, a in enumerate(issue.attachments, 20001)
            ],
            "comment": {"comments": [{"body": c} for c in issue.comments], "total": len(issue.comments)},
        }
        chosen = everything if fields is None else {k: v for k, v in everything.items() if k in fields}
        return {
            "id": issue.id,
            "key": issue.key,
            "self": f"{self.url}/rest/api/2/issue/{issue.id}",
            "fields": chosen,
        }

    # --- handlers ---------------------------------------------------------------------------------

    def myself(self, req: Request) -> Answer:
        who: dict[str, Any] = {"displayName": "alertsleuth bot", "active": True}
        if self.flavor == "cloud":
            who |= {"accountId": "5b10ac8d82e05b22cc7d4ef5", "emailAddress": "bot@example.com"}
        else:
            who |= {"name": "alertsleuth", "key": "JIRAUSER10100"}
        return Answer(200, who)

    def get_project(self, req: Request) -> Answer:
        key = req.params["project"]
        if key != self.project:
            return jira_error(404, f"No project could be found with key '{key}'.")
        types = [{"id": str(10000 + n), "name": t} for n, t in enumerate(self.issue_types)]
        return Answer(200, {"id": "10000", "key": key, "name": "Operations", "issueTypes": types})

    def create_issue(self, req: Request) -> Answer:
        body = self._body(req)
        if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
            return jira_error(400, "Can not deserialize the request: a JSON object with fields is expected.")
        f = body["fields"]
        errors: dict[str, str] = {}
        project = f.get("project")
        if not isinstance(project, dict) or not (project.get("key") or project.get("id")):
            errors["project"] = "project is required"
        elif project.get("key") != self.project:
            errors["project"] = f"valid project is required ({project.get('key')!r} does not exist)"
        itype = f.get("issuetype")
        if not isinstance(itype, dict) or not itype.get("name"):
            errors["issuetype"] = "issue type is required"
        elif itype["name"] not in self.issue_types:
            errors["issuetype"] = "Specify a valid issue type"
        summary = f.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors["summary"] = "You must specify a summary of the issue."
        elif len(summary) > 255:
            errors["summary"] = "Summary must be less than 255 characters."
        elif "\n" in summary:
            errors["summary"] = "The summary is invalid because it contains newline characters."
        description = f.get("description")
        if description is not None:
            if not isinstance(description, str):  # v2 takes wiki markup; a v3 ADF document is refused
                errors["description"] = "Operation value must be a string"
            elif len(description) > 32767:
                errors["description"] = (
                    "The entered text is too long. It exceeds the allowed limit of 32,767 characters."
                )
        labels = f.get("labels", [])
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            errors["labels"] = "labels must be an array of strings"
        else:
            for label in labels:
                if re.search(r"\s", label):
                    errors["labels"] = f"The label '{label}' contains spaces which is invalid."
                elif len(label) > 255:
                    errors["labels"] = "The label must not exceed 255 characters."
        priority = f.get("priority")
        if priority is not None and (
            not isinstance(priority, dict) or priority.get("name") not in self.priorities
        ):
            errors["priority"] = "Specify the Priority (id or name) in the string format"
        if errors:
            return jira_error(400, **errors)
        issue_id = str(next(self._ids))
        issue = Issue(issue_id, f"{self.project}-{next(self._numbers)}", dict(f))
        self.issues[issue_id] = issue
        return Answer(
            201, {"id": issue_id, "key": issue.key, "self": f"{self.url}/rest/api/2/issue/{issue_id}"}
        )

    def get_issue(self, req: Request) -> Answer:
        issue = self._issue(req.params["issue"])
        if issue is None:
            return self._no_issue()
        fields = req.arg("fields")
        return Answer(200, self.issue_json(issue, fields.split(",") if fields else None))

    def add_comment(self, req: Request) -> Answer:
        issue = self._issue(req.params["issue"])
        if issue is None:
            return self._no_issue()
        body = self._body(req)
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str) or not text.strip():
            return jira_error(400, comment="Comment body can not be empty!")
        if len(text) > 32767:
            return jira_error(
                400,
                comment="The entered text is too long. It exceeds the allowed limit of 32,767 characters.",
            )
        issue.comments.append(text)
        return Answer(201, {"id": str(30000 + len(issue.comments)), "body": text})

    def add_attachments(self, req: Request) -> Answer:
        if req.headers.get("x-atlassian-token") != "no-check":
            return Answer(403, b"XSRF check failed", content_type="text/plain")
        issue = self._issue(req.params["issue"])
        if issue is None:
            return self._no_issue()
        parts = form_files(req)
        if parts is None:
            return jira_error(415, "Attachments are posted as multipart/form-data.")
        files = [p for p in parts if p.field == "file" and p.filename]
        if not files or len(files) != len(parts):
            return jira_error(
                400, "The multipart/form-data parameter that contains the attachments must be 'file'."
            )
        issue.attachments.extend(files)
        first = len(issue.attachments) - len(files) + 20001
        return Answer(
            200,
            [
                {"id": str(n), "filename": f.filename, "size": len(f.data), "mimeType": f.content_type}
                for n, f in enumerate(files, first)
            ],
        )

    def _available(self, issue: Issue) -> list[Transition]:
        return [t for t in self.transitions if t.to != issue.status]

    def get_transitions(self, req: Request) -> Answer:
        issue = self._issue(req.params["issue"])
        if issue is None:
            return self._no_issue()
        return Answer(
            200,
            {
                "expand": "transitions",
                "transitions": [
                    {
                        "id": t.id,
                        "name": t.name,
                        "to": {"name": t.to, "statusCategory": {"key": t.category}},
                        "hasScreen": False,
                    }
                    for t in self._available(issue)
                ],
            },
        )

    def do_transition(self, req: Request) -> Answer:
        issue = self._issue(req.params["issue"])
        if issue is None:
            return self._no_issue()
        body = self._body(req)
        transition = body.get("transition") if isinstance(body, dict) else None
        tid = transition.get("id") if isinstance(transition, dict) else None
        if not tid:
            return jira_error(400, "Missing 'transition' identifier")
        chosen = next((t for t in self._available(issue) if t.id == str(tid)), None)
        if chosen is None:
            return jira_error(400, f"Transition id '{tid}' is not valid for this issue.")
        issue.status, issue.category = chosen.to, chosen.category
        return Answer(204, b"")

    # --- search -----------------------------------------------------------------------------------

    JQL = re.compile(
        r'\s*project\s*=\s*"?(?P<project>[^"\s]+)"?\s+AND\s+labels\s*=\s*"(?P<label>(?:[^"\\]|\\.)*)"'
        r"(?:\s+ORDER\s+BY\s+\w+(?:\s+(?:ASC|DESC))?)?\s*",
        re.IGNORECASE,
    )

    def _search(self, req: Request) -> tuple[list[Issue], list[str]] | Answer:
        jql = req.arg("jql")
        if not jql:
            return jira_error(400, "The JQL query is required (unbounded queries are not supported).")
        m = self.JQL.fullmatch(jql)
        if m is None:
            return jira_error(
                400, f"Error in the JQL Query: this fake understands only project and labels: {jql}"
            )
        label = re.sub(r"\\(.)", r"\1", m["label"])
        found = [
            i
            for i in self.issues.values()
            if i.key.startswith(m["project"] + "-") and label in i.fields.get("labels", [])
        ]
        fields = (req.arg("fields") or "").split(",")
        return found[: int(req.arg("maxResults") or 50)], [f for f in fields if f]

    def search_v2(self, req: Request) -> Answer:
        if self.flavor == "cloud":
            return jira_error(
                410,
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API. "
                "A full migration guideline is available at https://developer.atlassian.com/changelog/#CHANGE-2046",
            )
        result = self._search(req)
        if isinstance(result, Answer):
            return result
        issues, fields = result
        body = {"startAt": 0, "maxResults": len(issues), "total": len(issues)}
        return Answer(200, body | {"issues": [self.issue_json(i, fields or None) for i in issues]})

    def search_jql(self, req: Request) -> Answer:
        if self.flavor != "cloud":
            return self.not_found(req)
        result = self._search(req)
        if isinstance(result, Answer):
            return result
        issues, fields = result
        # Cloud's enhanced search returns only ids unless fields are asked for
        docs = [self.issue_json(i, fields) if fields else {"id": i.id} for i in issues]
        return Answer(200, {"issues": docs, "isLast": True})
