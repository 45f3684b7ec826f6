"""Two-way ChatOps on Feishu, WeCom and DingTalk through the real app: requests built, signed and
encrypted as each platform sends them (tests/fakes/chat_platforms.py), answered through loopback fakes
of their reply APIs, about an incident made by an Alertmanager webhook and investigated against the
real Prometheus. For each platform: the URL verification (where it has one), a command answered where
it was asked, forged, misdirected and replayed requests refused with 401 naming the check (nothing
posted for them), a user not allowed politely refused (and audited), and an unknown incident named.
Slack: a platform not configured is 404, and one event delivered twice is answered once."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from server.chatops.platforms import Raw
from server.settings import Settings
from tests.conftest import PromEnv, serve, wait_for
from tests.fakes import chat_platforms as fake
from tests.fakes.chat_platforms import (
    FEISHU_USER,
    SLACK_CHANNEL,
    SLACK_USER,
    FakeSlackAPI,
    slack_event,
    slack_request,
)
from tests.fakes.feishu import FakeFeishu
from tests.server.test_api import wait_report, webhook

FEISHU_TOKEN, FEISHU_KEY = "qwzmWAfXcwUcPngrWc6Cvx0mdNv6gQBh", "kudryavtsev-encrypt-key-0001"
FEISHU_APP, FEISHU_SECRET = "cli_a5f0e2d7c4b3a00d", "Xk2vR9pLq4sT7wYz1bN6mC3dF8gH5jKa"
WECOM_TOKEN, WECOM_KEY, WECOM_CORP = (
    "QDG6eK",
    "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "wx5823bf96d3bd56c7",
)
WECOM_SECRET, WECOM_AGENT = "corp-secret-abc123", 1000002
DINGTALK_SECRET = "gbA6hdyTpQ0ZD1yR0CjpnzXcB2b5fw8L9xJvRkMCa7sYqNe3"
DINGTALK_USER = "manager4220"  # fake.dingtalk_message's senderStaffId
SLACK_SECRET, SLACK_TOKEN = "8f742231b10e8888abcd99yyyzzz85a5", "xoxb-1111-2222-abcdefabcdef"
UNKNOWN = 999999
REFUSAL = "You may not use alertsleuth here; ask an operator listed for 'read'."


def post(c: httpx.Client, platform: str, raw: Raw) -> httpx.Response:
    return c.post(f"/api/v1/chat/{platform}", content=raw.body, headers=dict(raw.headers), params=raw.query)


def refused(c: httpx.Client, platform: str, raw: Raw) -> str:
    """The `detail` of a request the platform's check refused (401)."""
    r = post(c, platform, raw)
    assert r.status_code == 401, (r.status_code, r.text)
    detail: str = r.json()["detail"]
    return detail


@contextmanager
def running(
    make_settings: Callable[..., Settings],
    prom: PromEnv,
    chatops: dict[str, Any],
    fingerprint: str,
    **settings: Any,
) -> Iterator[tuple[httpx.Client, int]]:
    """The app with `chatops` (and `settings`), and an incident investigated: (a client, the incident's
    id)."""
    env, stop = serve(make_settings(prometheus_url=prom.url, chatops=chatops, **settings))
    try:
        with httpx.Client(base_url=env.url, timeout=15) as c:
            r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint=fingerprint))
            assert r.status_code == 202, r.text
            incident: int = r.json()["incidents_created"][0]
            assert wait_report(c, incident, timeout=60)["investigation"] == "done"
            yield c, incident
    finally:
        stop()


def refused_audit(c: httpx.Client, incident: int, actor: str) -> dict[str, Any]:
    events = c.get("/api/v1/audit", params={"incident_id": incident}).json()
    found = [e for e in events if e["kind"] == "refused" and e["actor"] == actor]
    assert len(found) == 1, events
    event: dict[str, Any] = found[0]
    return event


def status_line(text: str, incident: int) -> None:
    assert text.startswith(f"#{incident} HighLoginFailureRate: firing since"), text
    assert "shanghai" in text, text


# --------------------------------------------------------------------------------------------- Feishu


def feishu_says(
    text: str,
    n: int,
    *,
    user: str = FEISHU_USER,
    token: str = FEISHU_TOKEN,
    key: str = FEISHU_KEY,
    ago: float = 0,
) -> Raw:
    """A message by `user` in a thread of the chat, with event and message ids of its own, encrypted
    and signed with `key`, sent `ago` seconds ago."""
    payload = fake.feishu_message(
        token, f"@_user_1 {text}", message_id=f"om_msg{n:04d}", root_id="om_root0001", event_id=f"ev{n:030d}"
    )
    payload["event"]["sender"]["sender_id"]["open_id"] = user
    return fake.feishu_request(payload, now=time.time() - ago, encrypt_key=key)


def feishu_chatops(api_url: str) -> dict[str, Any]:
    """ChatOps on Feishu through the local API at `api_url`, FEISHU_USER allowed to read."""
    return {
        "platforms": {
            "feishu": {
                "verification_token": FEISHU_TOKEN,
                "encrypt_key": FEISHU_KEY,
                "app_id": FEISHU_APP,
                "app_secret": FEISHU_SECRET,
                "api_url": api_url,
            }
        },
        "access": {"feishu": {"read": [FEISHU_USER]}},
    }


def test_feishu_verification_commands_refusals(make_settings: Callable[..., Settings], prom: PromEnv) -> None:
    with fake.serve(fake.FakeFeishuAPI(app_id=FEISHU_APP, app_secret=FEISHU_SECRET)) as api:
        chatops = feishu_chatops(api.api_url)
        with running(make_settings, prom, chatops, "fe15") as (c, incident):
            # the v1 URL verification, encrypted as Feishu sends it with an encrypt key (unsigned)
            challenge = fake.feishu_url_verification(FEISHU_TOKEN, "1b6aef1a-401f-406a-be41-f48911eabcef")
            raw = fake.feishu_request(challenge, now=time.time(), encrypt_key=FEISHU_KEY, signed=False)
            r = post(c, "feishu", raw)
            assert r.status_code == 200 and r.json() == {"challenge": "1b6aef1a-401f-406a-be41-f48911eabcef"}
            wrong = challenge | {"token": "not-the-token"}
            unsigned = fake.feishu_request(wrong, now=time.time(), encrypt_key=FEISHU_KEY, signed=False)
            assert "missing X-Lark-Signature header" in refused(c, "feishu", unsigned)

            forged = feishu_says(f"#{incident} status", 1, key="another-encrypt-key")
            assert refused(c, "feishu", forged) == "signature mismatch"
            stolen = feishu_says(f"#{incident} status", 2, token="stolen-token")
            assert refused(c, "feishu", stolen) == "verification token mismatch"
            replayed = feishu_says(f"#{incident} status", 3, ago=3600)
            assert refused(c, "feishu", replayed) == "timestamp outside the 300 s replay window"

            assert post(c, "feishu", feishu_says(f"#{incident} status", 4)).status_code == 200
            [answer] = wait_for("the status reply", lambda: api.replies)
            assert (answer["message_id"], answer["reply_in_thread"]) == ("om_msg0004", True)
            status_line(answer["text"], incident)

            assert (
                post(c, "feishu", feishu_says(f"#{incident} status", 5, user="ou_stranger")).status_code
                == 200
            )
            refusal = wait_for("the refusal", lambda: api.replies[1:])[0]
            assert (refusal["message_id"], refusal["text"]) == ("om_msg0005", REFUSAL)
            event = refused_audit(c, incident, "feishu:ou_stranger")
            assert event["via"] == "feishu" and event["detail"] == {
                "command": "status",
                "class": "read",
                "incident": incident,
            }

            assert post(c, "feishu", feishu_says(f"#{UNKNOWN} status", 6)).status_code == 200
            unknown = wait_for("the unknown incident's answer", lambda: api.replies[2:])[0]
            assert (unknown["message_id"], unknown["text"]) == (
                "om_msg0006",
                f"There is no incident #{UNKNOWN}.",
            )
            # A click on a card's Deny button is the deny command: FEISHU_USER may only read.
            click = fake.feishu_card_trigger(FEISHU_TOKEN, {"action": "deny", "value": "7"})
            assert (
                post(
                    c, "feishu", fake.feishu_request(click, now=time.time(), encrypt_key=FEISHU_KEY)
                ).status_code
                == 200
            )
            denied = wait_for("the click's answer", lambda: api.replies[3:])[0]
            assert (denied["message_id"], denied["text"]) == (
                "om_card0002",
                "You may not approve or deny runbook actions here; ask an operator listed for 'approve'.",
            )
            time.sleep(0.3)
            assert [r["message_id"] for r in api.replies] == [
                "om_msg0004",
                "om_msg0005",
                "om_msg0006",
                "om_card0002",
            ]
            assert all("receive_id" not in r for r in api.replies)  # replies to the messages, not new ones


def test_feishu_answers_in_the_language_of_the_reports(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    """ALERTSLEUTH_LANGUAGE=zh: the status, the answer about an unknown incident, the refusal and what is
    wrong with a command are Chinese (agent/text/chatops.yaml), the command words stay as typed."""
    with fake.serve(fake.FakeFeishuAPI(app_id=FEISHU_APP, app_secret=FEISHU_SECRET)) as api:
        chatops = feishu_chatops(api.api_url)
        with running(make_settings, prom, chatops, "fe1a", language="zh") as (c, incident):
            assert post(c, "feishu", feishu_says(f"#{incident} status", 1)).status_code == 200
            [status] = wait_for("the status reply", lambda: api.replies)
            assert status["text"].startswith(f"#{incident} HighLoginFailureRate：firing，始于"), status
            assert " · 调查 done" in status["text"] and "shanghai" in status["text"], status
            assert post(c, "feishu", feishu_says(f"#{UNKNOWN} status", 2)).status_code == 200
            unknown = wait_for("the unknown incident's answer", lambda: api.replies[1:])[0]
            assert unknown["text"] == f"没有事件 #{UNKNOWN}。"
            assert post(c, "feishu", feishu_says("status", 3, user="ou_stranger")).status_code == 200
            refusal = wait_for("the refusal", lambda: api.replies[2:])[0]
            assert refusal["text"] == "你无权在此使用 alertsleuth；请联系名单 'read' 中的运维人员。"
            assert post(c, "feishu", feishu_says(f"#{incident} run", 4)).status_code == 200
            unparsed = wait_for("the parse error", lambda: api.replies[3:])[0]
            assert unparsed["text"] == "run 需要运行手册名称（用 'runbooks' 列出）：run <runbook>"


# ---------------------------------------------------------------------------------------------- WeCom


def wecom_says(
    text: str,
    n: int,
    *,
    user: str = "zhangsan",
    token: str = WECOM_TOKEN,
    receiver: str = WECOM_CORP,
    ago: float = 0,
) -> Raw:
    """A text message by `user` (MsgId of its own), encrypted for `receiver`, signed with `token`."""
    message = fake.wecom_text(user, text, corp_id=WECOM_CORP, msg_id=f"45612553542513{n:05d}")
    encrypted = fake.wecom_encrypt(WECOM_KEY, message, receiver)
    return fake.wecom_post(token, encrypted, corp_id=WECOM_CORP, now=time.time() - ago)


def test_wecom_verification_commands_refusals(make_settings: Callable[..., Settings], prom: PromEnv) -> None:
    users = ("zhangsan", "lisi")
    with fake.serve(
        fake.FakeWeComAPI(corp_id=WECOM_CORP, corp_secret=WECOM_SECRET, agent_id=WECOM_AGENT, users=users)
    ) as api:
        chatops = {
            "platforms": {
                "wecom": {
                    "token": WECOM_TOKEN,
                    "encoding_aes_key": WECOM_KEY,
                    "corp_id": WECOM_CORP,
                    "corp_secret": WECOM_SECRET,
                    "agent_id": WECOM_AGENT,
                    "api_url": api.api_url,
                }
            },
            "access": {"wecom": {"read": ["zhangsan"]}},
        }
        with running(make_settings, prom, chatops, "3c0m") as (c, incident):
            echo = fake.wecom_encrypt(WECOM_KEY, b"8126734401983", WECOM_CORP)
            verify = fake.wecom_verify_url(WECOM_TOKEN, echo, now=time.time())
            r = c.get("/api/v1/chat/wecom", params=verify.query)
            assert r.status_code == 200 and r.text == "8126734401983", r.text
            assert r.headers["content-type"].startswith("text/plain")
            forged_verify = fake.wecom_verify_url("not-the-token", echo, now=time.time())
            r = c.get("/api/v1/chat/wecom", params=forged_verify.query)
            assert r.status_code == 401 and r.json()["detail"] == "signature mismatch"

            assert (
                refused(c, "wecom", wecom_says(f"#{incident} status", 1, token="bad")) == "signature mismatch"
            )
            replayed = wecom_says(f"#{incident} status", 2, ago=3600)
            assert refused(c, "wecom", replayed) == "timestamp outside the 300 s replay window"
            foreign = wecom_says(f"#{incident} status", 3, receiver="ww-another-corp")
            assert refused(c, "wecom", foreign).startswith("corp id mismatch")

            assert post(c, "wecom", wecom_says(f"#{incident} status", 4)).status_code == 200
            [answer] = wait_for("the status message", lambda: api.messages)
            assert (answer["touser"], answer["agentid"], answer["msgtype"]) == (
                "zhangsan",
                WECOM_AGENT,
                "text",
            )
            status_line(answer["text"]["content"], incident)

            assert post(c, "wecom", wecom_says(f"#{incident} status", 5, user="lisi")).status_code == 200
            refusal = wait_for("the refusal", lambda: api.messages[1:])[0]
            assert (refusal["touser"], refusal["text"]["content"]) == ("lisi", REFUSAL)
            assert refused_audit(c, incident, "wecom:lisi")["detail"]["class"] == "read"

            assert post(c, "wecom", wecom_says(f"#{UNKNOWN} status", 6)).status_code == 200
            unknown = wait_for("the unknown incident's answer", lambda: api.messages[2:])[0]
            assert (unknown["touser"], unknown["text"]["content"]) == (
                "zhangsan",
                f"There is no incident #{UNKNOWN}.",
            )
            # A click on a template card's Deny button is the deny command: zhangsan may only read.
            event = fake.wecom_card_event("zhangsan", "deny 7", "as-task-0001", corp_id=WECOM_CORP)
            click = fake.wecom_post(
                WECOM_TOKEN,
                fake.wecom_encrypt(WECOM_KEY, event, WECOM_CORP),
                corp_id=WECOM_CORP,
                now=time.time(),
            )
            assert post(c, "wecom", click).status_code == 200
            denied = wait_for("the click's answer", lambda: api.messages[3:])[0]
            assert (denied["touser"], denied["text"]["content"]) == (
                "zhangsan",
                "You may not approve or deny runbook actions here; ask an operator listed for 'approve'.",
            )
            time.sleep(0.3)
            assert [m["touser"] for m in api.messages] == ["zhangsan", "lisi", "zhangsan", "zhangsan"]


# ------------------------------------------------------------------------------------------- DingTalk


def test_dingtalk_commands_refusals(make_settings: Callable[..., Settings], prom: PromEnv) -> None:
    with fake.serve(fake.FakeDingTalkSessions()) as api:
        session = api.session_url()
        chatops = {
            "platforms": {"dingtalk": {"app_secret": DINGTALK_SECRET, "http_webhook_hosts": ["127.0.0.1"]}},
            "access": {"dingtalk": {"read": [DINGTALK_USER]}},
        }

        def says(text: str, n: int, *, secret: str = DINGTALK_SECRET, ago: float = 0, **extra: Any) -> Raw:
            now = time.time()
            payload = fake.dingtalk_message(text, webhook=session, expires_ms=int(now * 1000) + 5_400_000)
            payload |= {"msgId": f"msgT0N5ZgWfjyZ6SgHw{n:04d}==", **extra}
            return fake.dingtalk_request(secret, payload, now=now - ago)

        with running(make_settings, prom, chatops, "d1n9") as (c, incident):
            assert (
                refused(c, "dingtalk", says(f"#{incident} why?", 1, secret="another")) == "signature mismatch"
            )
            replayed = says(f"#{incident} why?", 2, ago=7200)
            assert refused(c, "dingtalk", replayed) == "timestamp outside the 3600 s replay window"
            evil = says(f"#{incident} why?", 3, sessionWebhook="https://evil.example.com/robot/sendBySession")
            assert refused(c, "dingtalk", evil) == "sessionWebhook host not allowed"
            unsigned = says(f"#{incident} why?", 4)
            unsigned = Raw({k: v for k, v in unsigned.headers.items() if k != "sign"}, {}, unsigned.body, 0)
            assert refused(c, "dingtalk", unsigned) == "missing sign header"

            assert post(c, "dingtalk", says(f"@alertsleuth #{incident} why?", 5)).status_code == 200
            [answer] = wait_for("the answer", lambda: api.messages)
            assert answer["msgtype"] == "text" and "shanghai" in answer["text"]["content"], answer
            ask = [
                e
                for e in c.get("/api/v1/audit", params={"incident_id": incident}).json()
                if e["kind"] == "ask"
            ]
            assert [(e["actor"], e["detail"]["question"]) for e in ask] == [
                (f"dingtalk:{DINGTALK_USER}", "why?")
            ]

            stranger = says(f"#{incident} why?", 6, senderStaffId="intern0001")
            assert post(c, "dingtalk", stranger).status_code == 200
            refusal = wait_for("the refusal", lambda: api.messages[1:])[0]
            assert refusal["text"]["content"] == REFUSAL
            assert refused_audit(c, incident, "dingtalk:intern0001")["detail"] == {
                "command": "ask",
                "class": "read",
                "incident": incident,
            }

            assert post(c, "dingtalk", says(f"#{UNKNOWN} status", 7)).status_code == 200
            unknown = wait_for("the unknown incident's answer", lambda: api.messages[2:])[0]
            assert unknown["text"]["content"] == f"There is no incident #{UNKNOWN}."
            time.sleep(0.3)
            assert len(api.messages) == 3


# ---------------------------------------------------------------------------------------------- Slack


def slack_says(text: str, event_id: str, *, user: str = SLACK_USER, ts: str = "1763709001.000100") -> Raw:
    event = {"type": "message", "user": user, "channel": SLACK_CHANNEL, "ts": ts, "text": text}
    return slack_request(SLACK_SECRET, slack_event(event, event_id=event_id), now=time.time())


@contextmanager
def slack_app(make_settings: Callable[..., Settings], slack: FakeSlackAPI) -> Iterator[httpx.Client]:
    chatops = {
        "platforms": {
            "slack": {"signing_secret": SLACK_SECRET, "bot_token": SLACK_TOKEN, "api_url": slack.api_url}
        },
        "access": {"slack": {"read": [SLACK_USER]}},
    }
    env, stop = serve(make_settings(chatops=chatops), start_workers=False)
    try:
        with httpx.Client(base_url=env.url, timeout=15) as c:
            yield c
    finally:
        stop()


def test_slack_platforms_not_configured_are_404_and_a_repeated_event_is_answered_once(
    make_settings: Callable[..., Settings],
) -> None:
    with fake.serve(FakeSlackAPI(bot_token=SLACK_TOKEN)) as slack, slack_app(make_settings, slack) as c:
        for platform in ("feishu", "wecom", "dingtalk"):
            r = c.post(
                f"/api/v1/chat/{platform}", content=b"{}", headers={"content-type": "application/json"}
            )
            assert r.status_code == 404 and f"{platform} is not configured" in r.json()["detail"], r.text
        assert c.get("/api/v1/chat/wecom", params={"echostr": "x"}).status_code == 404

        # Slack retries an event it got no quick answer to: same event_id, signed again
        first = slack_says("help", "EvDUPLICATE1")
        assert post(c, "slack", first).status_code == 200
        time.sleep(1.1)  # a retry comes later, with a new timestamp and signature
        retry = slack_says("help", "EvDUPLICATE1")
        assert retry.headers["x-slack-signature"] != first.headers["x-slack-signature"]
        assert post(c, "slack", retry).status_code == 200
        assert post(c, "slack", slack_says("help", "EvDISTINCT01", ts="1763709002.000100")).status_code == 200
        wait_for("two answers", lambda: len(slack.messages) >= 2)
        time.sleep(0.5)  # time for a third, were the retry answered
        assert [m["thread_ts"] for m in slack.messages] == ["1763709001.000100", "1763709002.000100"]


def test_slack_refuses_a_stranger_naming_an_unknown_incident_politely(
    make_settings: Callable[..., Settings],
) -> None:
    """The refusal does not depend on whether the incident named exists: it is posted and audited."""
    with fake.serve(FakeSlackAPI(bot_token=SLACK_TOKEN)) as slack, slack_app(make_settings, slack) as c:
        assert (
            post(c, "slack", slack_says(f"#{UNKNOWN} status", "EvSTRANGER01", user="U0STRANGER")).status_code
            == 200
        )
        [answer] = wait_for("the refusal", lambda: slack.messages)
        assert answer["text"] == REFUSAL, answer
        events = c.get("/api/v1/audit").json()
        assert [(e["kind"], e["actor"], e["detail"]) for e in events] == [
            ("refused", "slack:U0STRANGER", {"command": "status", "class": "read", "incident": UNKNOWN})
        ]


def test_feishu_reply_in_the_notice_thread_is_about_its_incident(
    make_settings: Callable[..., Settings], prom: PromEnv
) -> None:
    """The Feishu sink (the app, `chat_id`) posts the firing card and keeps its message id; a reply in
    that thread names no incident and is answered there, about that incident."""
    chat = fake.FEISHU_CHAT
    with (
        fake.serve(FakeFeishu(app_id=FEISHU_APP, app_secret=FEISHU_SECRET)) as outbound,
        fake.serve(fake.FakeFeishuAPI(app_id=FEISHU_APP, app_secret=FEISHU_SECRET)) as api,
    ):
        sink = {"type": "feishu", "chat_id": chat, "app_id": FEISHU_APP, "app_secret": FEISHU_SECRET}
        settings = make_settings(
            prometheus_url=prom.url,
            delivery={
                "sinks": {"ops-feishu": {**sink, "api_url": outbound.url}},
                "route": {"sinks": ["ops-feishu"]},
            },
            chatops=feishu_chatops(api.api_url),
        )
        env, stop = serve(settings)
        try:
            with httpx.Client(base_url=env.url, timeout=15) as c:
                r = c.post("/api/v1/webhook/alertmanager", json=webhook(prom, fingerprint="fe1d"))
                incident = r.json()["incidents_created"][0]
                wait_report(c, incident, timeout=60)
                [card] = wait_for("the firing card", lambda: outbound.messages)
                assert card["receive_id"] == chat
                payload = fake.feishu_message(
                    FEISHU_TOKEN,
                    "@_user_1 status",
                    message_id="om_reply0001",
                    root_id=card["message_id"],
                    event_id="ev" + "7" * 30,
                )
                raw = fake.feishu_request(payload, now=time.time(), encrypt_key=FEISHU_KEY)
                assert post(c, "feishu", raw).status_code == 200
                [answer] = wait_for("the answer in the thread", lambda: api.replies)
                assert (answer["message_id"], answer["reply_in_thread"]) == ("om_reply0001", True)
                status_line(answer["text"], incident)
        finally:
            stop()
