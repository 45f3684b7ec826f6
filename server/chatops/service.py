"""ChatOps, the one way through: a verified chat message (or an API call) becomes a command, checked
against the allow-lists, carried out, and answered where it was asked.

    inbound request ─▶ Platform.verify_and_parse ─▶ Inbound ─▶ parse_command ─▶ the incident it is about
      (named `#42`, else the thread of the incident's notice) ─▶ AccessPolicy.allowed ─▶ the operation
      ─▶ Platform.reply in the thread

The operations (`silence`, `unsilence`, `propose`, `approve`, `deny`) are the same for chat, the API
and the UI; each is audited (server/db/chatops.py, append-only) and, when it changes something, noted
on the incident's tickets through the outbox. A refusal is polite, logged and audited. Runbook steps
finish later: the desk calls `_action_news`, which answers in the thread the action was asked from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.exc import SQLAlchemyError

from agent.ask import Asker
from agent.headline import headline
from agent.texts import phrases, said, say
from server.chatops.access import AccessPolicy, refusal
from server.chatops.commands import COMMAND_CLASS, Command, help_text, parse_command
from server.chatops.config import ChatOpsConfig
from server.chatops.desk import RunbookDesk
from server.chatops.platforms import PLATFORMS, Inbound, Platform, Raw
from server.db import Store
from server.db.chatops import Actor
from server.db.models import Incident, RunbookAction, SilenceRow
from server.delivery.plan import Planner
from server.runbooks import RunbookRunner
from server.silences import Alertmanagers, Matcher, SilenceRequest, auth_headers, incident_matchers
from tools.errors import AlertsleuthError, DeliveryError, RunbookError, SilenceError, StoreBusy
from tools.format import fmt_duration, fmt_labels, fmt_time

log = logging.getLogger("alertsleuth.chatops")

CHAT_RETRY_AFTER = 5.0  # seconds, when an event could not be recorded (platforms retry on their own)
# The acknowledgement of a verified request (the answer comes later, in the thread). Slack shows a slash
# command's response body as a message, WeCom wants an empty body; Feishu's card actions want JSON.
ACK: dict[str, tuple[str, bytes]] = {"feishu": ("application/json", b"{}")}


class ChatOps:
    def __init__(
        self,
        config: ChatOpsConfig,
        store: Store,
        asker: Asker,
        *,
        planner: Planner,
        wake: Callable[[], None],
        data_dir: Path,
        external_url: str | None = None,
        language: str = "en",
    ) -> None:
        self.config = config
        self.store = store
        self.asker = asker
        self.planner = planner
        self.wake = wake
        self.external_url = external_url.rstrip("/") if external_url else None
        self.language = language
        self.t = phrases("chatops", language)  # what it says (agent/text/chatops.yaml)
        self.policy: AccessPolicy = config.access
        self.platforms: dict[str, Platform] = {
            name: PLATFORMS[name](cfg) for name, cfg in config.platforms.configured().items()
        }
        self.silencer: Alertmanagers | None = None
        if (am := config.alertmanager) is not None:
            headers = auth_headers(
                username=am.username,
                password=am.password.get_secret_value() if am.password else None,
                bearer=am.bearer_token.get_secret_value() if am.bearer_token else None,
            )
            self.silencer = Alertmanagers(am.urls, timeout=am.timeout, headers=headers)
        self.desk: RunbookDesk | None = None
        if (rb := config.runbooks) is not None:
            runner = RunbookRunner(rb.work_dir or data_dir / "runbooks")
            self.desk = RunbookDesk(
                rb.loaded(),
                runner,
                store.actions,
                max_running=rb.max_running,
                notify=self._action_news,
            )
        self.http = httpx.Client(follow_redirects=False, headers={"User-Agent": "alertsleuth/0.1"})
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="chatops")

    def start(self) -> None:
        if self.desk is not None:
            self.desk.start()

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.desk is not None:
            self.desk.close()
        if self.silencer is not None:
            self.silencer.close()
        self.http.close()

    # ------------------------------------------------------------------ chat in

    def receive(self, platform: str, raw: Raw) -> tuple[str, bytes]:
        """Verify and parse one inbound request, answer a URL verification at once, and hand anything
        else to the pool (platforms want an answer within seconds). `ChatRequestRefused` propagates: the
        route answers 401 and nothing is done. Returns the (content type, body) to answer with."""
        chat = self.platforms.get(platform)
        if chat is None:
            raise LookupError(platform)
        inbound = chat.verify_and_parse(raw)
        if inbound.kind == "challenge":
            return chat.challenge_response(inbound)
        if inbound.kind != "ignored" and not self._repeated(inbound):
            self.pool.submit(self._handle, chat, inbound)
        return ACK.get(platform, ("text/plain", b""))

    def _repeated(self, inbound: Inbound) -> bool:
        """A platform's retry of an event taken already, by this replica or another (in the store). When
        the store cannot say, nothing is done and the request is answered 503 (`StoreBusy`): the
        platform sends it again, and it is taken then."""
        if not inbound.event_id:
            return False
        try:
            return not self.store.chatops.first_sight(inbound.platform, inbound.event_id)
        except SQLAlchemyError as exc:
            log.warning(
                "chat event not recorded: %s", type(exc).__name__, extra={"platform": inbound.platform}
            )
            raise StoreBusy(
                "the store could not record the chat event; nothing was done, send it again",
                retry_after=CHAT_RETRY_AFTER,
            ) from exc

    def _handle(self, chat: Platform, inbound: Inbound) -> None:
        ctx = {"platform": inbound.platform, "user": inbound.user, "channel": inbound.channel}
        try:
            text = self.answer(inbound)
        except Exception:
            log.exception("chat command crashed", extra=ctx)
            text = "Sorry, that failed inside alertsleuth; the operators can find it in its log."
        try:
            chat.reply(inbound, text, self.http)
        except DeliveryError as exc:
            log.warning("chat reply failed", extra={**ctx, "error": str(exc)})

    def answer(self, inbound: Inbound) -> str:
        """What to say back to one inbound message: the command carried out, or why not."""
        text = inbound.text
        if inbound.kind == "action" and inbound.action:
            text = f"{inbound.action.get('action', '')} {inbound.action.get('value', '')}".strip()
        cmd = parse_command(text, max_silence=self.config.max_silence_delta)
        actor = Actor(inbound.platform, inbound.user)
        klass = COMMAND_CLASS[cmd.kind]
        incident_id = cmd.incident_id or self._thread_incident(inbound)
        if not self.policy.allowed(inbound.platform, inbound.user, inbound.groups, klass):
            log.info(
                "chat command refused",
                extra={"platform": inbound.platform, "user": inbound.user, "class": klass},
            )
            known = incident_id if incident_id and self.store.incidents.exists(incident_id) else None
            detail = {"command": cmd.kind, "class": klass, "incident": incident_id}
            self.store.chatops.audit(actor, "refused", detail, incident_id=known)
            return refusal(klass, self.language)
        if cmd.kind == "invalid":
            return cmd.error_text(self.language) or help_text(lang=self.language)
        if cmd.kind == "help":
            return help_text(cmd.topic, self.language)
        if cmd.kind in ("approve", "deny"):
            return self._decide(cmd, actor)
        if incident_id is None:
            return self.t["which_incident"]
        inc = self.store.incidents.get(incident_id)
        if inc is None:
            return self.t["no_incident"].format(id=incident_id)
        return self._on_incident(cmd, inc, actor, inbound)

    def _thread_incident(self, inbound: Inbound) -> int | None:
        if not inbound.thread:
            return None
        return self.store.chatops.incident_of_thread(inbound.platform, inbound.channel, inbound.thread)

    def _on_incident(self, cmd: Command, inc: Incident, actor: Actor, inbound: Inbound) -> str:
        try:
            if cmd.kind == "ask":
                return self._ask(inc, cmd.question or inbound.text, actor)
            if cmd.kind == "status":
                return self.status(inc)
            if cmd.kind == "reinvestigate":
                self.store.jobs.requeue(inc.id)
                self.wake()
                self.store.chatops.audit(actor, "reinvestigate", {}, incident_id=inc.id)
                return self.t["reinvestigating"].format(id=inc.id)
            if cmd.kind == "silence":
                assert cmd.duration is not None
                row = self.silence(inc.id, actor, cmd.duration, cmd.matchers, cmd.comment or "")
                return self._silenced_line(inc, row)
            if cmd.kind == "unsilence":
                row = self.unsilence(inc.id, actor, cmd.silence_id)
                return self.t["unsilenced"].format(id=inc.id, silence=row.silence_id, actor=actor)
            if cmd.kind == "runbooks":
                return self._runbooks_text(inc)
            if cmd.kind == "run":
                assert cmd.runbook is not None
                action = self.propose(inc.id, cmd.runbook, actor, reply_to=_reply_to(inbound))
                return self.t["run_started"].format(id=inc.id, action=action.id, runbook=action.runbook)
        except (SilenceError, RunbookError, ValueError, LookupError) as exc:
            why = say(exc, self.language) if isinstance(exc, AlertsleuthError) else None
            return f"#{inc.id}: {why or (exc.args[0] if isinstance(exc, LookupError) else exc)}"
        return help_text(lang=self.language)

    def _decide(self, cmd: Command, actor: Actor) -> str:
        assert cmd.action_id is not None
        try:
            if cmd.kind == "approve":
                action = self.approve(cmd.action_id, actor)
                return self.t["approved"].format(action=action.id, runbook=action.runbook, actor=actor)
            action = self.deny(cmd.action_id, actor, cmd.reason or "")
            return self.t["denied"].format(action=action.id, runbook=action.runbook, actor=actor)
        except RunbookError as exc:
            return say(exc, self.language)

    def _ask(self, inc: Incident, question: str, actor: Actor) -> str:
        report = self.store.reports.latest(inc.id)
        result = self.asker.ask(question, report=report)
        queries = [q.model_dump(mode="json") for q in result.queries]
        self.store.ask_sessions.record(None, inc.id, question, result.answer, queries)
        self.store.chatops.audit(
            actor, "ask", {"question": question[:500], "mode": result.mode}, incident_id=inc.id
        )
        return result.answer

    # ------------------------------------------------------------------ what chat and the API share

    def status(self, inc: Incident) -> str:
        since = fmt_time(inc.starts_at)
        end = inc.resolved_at or datetime.now(UTC)
        lasted = fmt_duration((end - inc.starts_at).total_seconds())
        t = self.t
        head = t["status_head"].format(
            id=inc.id, alertname=inc.alertname, status=inc.status, since=since, lasted=lasted
        )
        if sev := inc.labels.get("severity"):
            head += f" · {sev}"
        lines = [head + t["status_investigation"].format(investigation=inc.investigation)]
        report = self.store.reports.latest(inc.id)
        if report is not None:
            h = headline(report)
            lines += [h.verdict, h.where]
        silence = self.store.chatops.active_silence(inc.id)
        if silence is not None:
            lines.append(
                t["status_silenced"].format(
                    until=fmt_time(silence.ends_at), actor=silence.created_by, silence=silence.silence_id
                )
            )
        if self.external_url:
            lines.append(f"{self.external_url}/ui/incidents/{inc.id}")
        return "\n".join(line for line in lines if line)

    def silence(
        self,
        incident_id: int,
        actor: Actor,
        duration: timedelta,
        matchers: list[Matcher] | None,
        comment: str,
    ) -> SilenceRow:
        """Silence the incident in Alertmanager (its labels by default), recorded on it and noted on its
        tickets. `SilenceError` when Alertmanager refuses or is down (nothing recorded)."""
        if self.silencer is None:
            raise SilenceError("silences are not configured (chatops.alertmanager)")
        if duration > self.config.max_silence_delta:
            raise SilenceError(f"at most {self.config.max_silence} (chatops.max_silence)")
        inc = self._incident(incident_id)
        chosen = matchers or incident_matchers(inc.labels)
        start = datetime.now(UTC)
        note = comment or f"alertsleuth incident #{incident_id}"
        req = SilenceRequest(chosen, start, start + duration, str(actor), note)
        silence_id = self.silencer.create(req)
        row = self.store.chatops.add_silence(
            incident_id, silence_id, [m.to_api() for m in chosen], start, start + duration, actor, note
        )
        self._note(inc, self._silenced_line(inc, row))
        return row

    def unsilence(self, incident_id: int, actor: Actor, silence_id: str | None) -> SilenceRow:
        if self.silencer is None:
            raise SilenceError("silences are not configured (chatops.alertmanager)")
        inc = self._incident(incident_id)
        row = self.store.chatops.active_silence(incident_id, silence_id)
        if row is None:
            which = f"silence {silence_id}" if silence_id else "active silence"
            raise LookupError(f"incident #{incident_id} has no {which} made by alertsleuth")
        self.silencer.expire(row.silence_id)
        self.store.chatops.expire_silence(incident_id, row.silence_id, actor)
        self._note(inc, self.t["unsilenced_note"].format(silence=row.silence_id, actor=actor))
        return row

    def runbooks(self, incident_id: int) -> list[dict[str, Any]]:
        if self.desk is None:
            return []
        inc = self._incident(incident_id)
        causes = self._causes(inc)
        return [
            {"name": f.runbook.name, "description": f.runbook.description, "why": f.reason}
            for f in self.desk.catalog.best_fits(inc.alertname, causes, inc.labels)
        ]

    def propose(
        self, incident_id: int, name: str, actor: Actor, reply_to: dict[str, Any] | None = None
    ) -> RunbookAction:
        desk = self._desk()
        inc = self._incident(incident_id)
        return desk.propose(
            inc.id, name, actor, alertname=inc.alertname, root_causes=self._causes(inc), labels=inc.labels,
            reply_to=reply_to,
        )  # fmt: skip

    def approve(self, action_id: int, actor: Actor) -> RunbookAction:
        return self._desk().approve(action_id, actor)

    def deny(self, action_id: int, actor: Actor, reason: str) -> RunbookAction:
        return self._desk().deny(action_id, actor, reason)

    # ------------------------------------------------------------------ helpers

    def _desk(self) -> RunbookDesk:
        if self.desk is None:
            raise said(RunbookError, "chatops", "runbooks_off")
        return self.desk

    def _incident(self, incident_id: int) -> Incident:
        inc = self.store.incidents.get(incident_id)
        if inc is None:
            raise LookupError(f"no incident {incident_id}")
        return inc

    def _causes(self, inc: Incident) -> list[dict[str, str]]:
        report = self.store.reports.latest(inc.id)
        return [dict(rc.labels) for rc in report.root_causes] if report is not None else []

    def _runbooks_text(self, inc: Incident) -> str:
        fits = self.runbooks(inc.id)
        if not fits:
            return self.t["no_runbooks"].format(id=inc.id)
        lines = [self.t["runbooks_head"].format(id=inc.id)]
        lines += [f"• {f['name']}: {f['description']} ({f['why']})" for f in fits]
        return "\n".join(lines)

    def _silenced_line(self, inc: Incident, row: SilenceRow) -> str:
        matchers = ", ".join(str(Matcher.from_api(m)) for m in row.matchers)
        return self.t["silenced"].format(
            id=inc.id,
            until=fmt_time(row.ends_at),
            actor=row.created_by,
            silence=row.silence_id,
            matchers=matchers or fmt_labels(inc.labels),
        )

    def _note(self, inc: Incident, text: str) -> None:
        """The incident's tickets hear what was done (a comment), through the outbox."""
        if self.store.deliveries.queue(inc.id, self.planner.for_note(inc.labels, text)):
            self.wake()

    def _action_news(self, action: RunbookAction) -> None:
        """A runbook step finished: say so where it was asked, and note a run on the tickets."""
        text = action_text(action, lang=self.language)
        if action.state in ("succeeded", "failed"):
            inc = self.store.incidents.get(action.incident_id)
            if inc is not None:
                self._note(inc, action_text(action, OUTPUT_IN_TICKET, lang=self.language))
        where = action.reply_to or {}
        chat = self.platforms.get(str(where.get("platform", "")))
        if chat is None:
            return
        inbound = Inbound(
            platform=str(where["platform"]),
            kind="message",
            user=str(where.get("user", "")),
            user_name="",
            channel=str(where.get("channel", "")),
            thread=where.get("thread"),
            message_id=where.get("message_id"),
            reply_hint=dict(where.get("reply_hint") or {}),
        )
        buttons = (
            [(self.t["approve_button"], f"approve {action.id}"), (self.t["deny_button"], f"deny {action.id}")]
            if action.state == "proposed"
            else []
        )
        try:
            chat.reply(inbound, text, self.http, buttons)
        except (DeliveryError, AlertsleuthError) as exc:
            log.warning("runbook news not delivered", extra={"action_id": action.id, "error": str(exc)})


def _reply_to(inbound: Inbound) -> dict[str, Any]:
    return {
        "platform": inbound.platform,
        "channel": inbound.channel,
        "thread": inbound.thread or inbound.message_id,
        "message_id": inbound.message_id,
        "user": inbound.user,
        "reply_hint": dict(inbound.reply_hint),
    }


OUTPUT_IN_CHAT = 2500  # characters of a step's output shown in the thread (all of it is in the API)
OUTPUT_IN_TICKET = 20_000  # ... and in the ticket's note


def action_text(action: RunbookAction, limit: int = OUTPUT_IN_CHAT, *, lang: str = "en") -> str:
    """What a thread and a ticket are told when a runbook step ends, in `lang`."""
    t = phrases("chatops", lang)
    step = action.run if action.state in ("succeeded", "failed") else action.dry_run
    step = step or {}
    output = str(step.get("output") or "").strip()
    if len(output) > limit:
        output = "[…]\n" + output[-limit:]
    status = t["step_status"].format(status=step.get("status", "?"), rc=step.get("rc"))
    key = {
        "proposed": "action_proposed",
        "dry_run_failed": "action_dry_run_failed",
        "succeeded": "action_ran",
        "failed": "action_ran",
        "denied": "action_denied",
    }.get(action.state, "action_other")
    head = t[key].format(
        action=action.id,
        runbook=action.runbook,
        approver=action.approved_by,
        status=status,
        state=action.state,
    )
    return head + (f"\n{output}" if output else "")
