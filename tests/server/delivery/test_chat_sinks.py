"""Chat sinks against loopback fakes of WeCom, Feishu, DingTalk and Slack: message shapes, tokens,
signatures, size limits, rate limits and errors that never leak a credential."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError

from server.delivery.base import ChatThreadRef, DeliveryError, Notice, NoticeCause, TicketSlot
from server.delivery.sinks.dingtalk import DingTalkConfig, DingTalkSink
from server.delivery.sinks.feishu import FeishuConfig, FeishuSink
from server.delivery.sinks.slack import SlackConfig, SlackSink
from server.delivery.sinks.wecom import WeComAppConfig, WeComAppSink, WeComRobotConfig, WeComRobotSink
from tests.fakes.api import Answer, FakeAPI
from tests.fakes.chat_platforms import FakeSlackAPI
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.feishu import FakeFeishu
from tests.fakes.slack import FakeSlack
from tests.fakes.wecom import FakeWeCom, error

REPORT_URL = "https://alertsleuth.example.com/reports/r-3f9a1c2b.html"
FEISHU_SECRET = "feishu-sign-secret-abc123"
DINGTALK_SECRET = "SEC5a3ecf88f2b3eb50db30ecfc00f53033ac909c99bf7f88fd612bda89d7f3a9dc"
F = TypeVar("F", bound=FakeAPI)
CHINESE = "登录失败率在上海地区的管理员用户中显著升高，主要集中在凌晨的批量登录请求。"


def notice(**changes: Any) -> Notice:
    base = Notice(
        event="firing",
        incident_id=42,
        marker="alertsleuth-3f9a1c2b7d4e-1763700000",
        alertname="LoginFailureRatio",
        status="firing",
        severity="critical",
        labels={"alertname": "LoginFailureRatio", "job": "auth"},
        title="[FIRING] LoginFailureRatio: ip_region=shanghai, user_type=admin",
        summary="Login failures rose from 2% to 31% in 10 minutes, concentrated in one region.",
        root_causes=[
            NoticeCause(
                {"ip_region": "shanghai", "user_type": "admin"}, "admins in shanghai fail 40% of logins", 0.91
            ),
            NoticeCause({"client": "ios-7.2"}, "the new iOS client retries bad passwords", 0.42),
        ],
        starts_at="2025-11-21T04:00:00Z",
        report_url=REPORT_URL,
        incident_url="https://alertsleuth.example.com/incidents/42",
    )
    return dataclasses.replace(base, **changes)


def resolved() -> Notice:
    return notice(
        event="resolved",
        status="resolved",
        title="[RESOLVED] LoginFailureRatio: ip_region=shanghai, user_type=admin",
        ends_at="2025-11-21T04:04:05Z",
        duration_seconds=245,
    )


def huge() -> Notice:
    """A summary and root-cause list far over every platform's limit."""
    summary = "\n".join(
        f"Line {i}: the failure ratio of shard {i} stayed above the threshold." for i in range(600)
    )
    causes = [
        NoticeCause({"shard": str(i)}, f"shard {i} rejects tokens " + "x" * 80, 0.5) for i in range(200)
    ]
    return notice(summary=summary, root_causes=causes)


def slot() -> TicketSlot:
    return TicketSlot(None, lambda ref: None)


@contextmanager
def running(fake: F) -> Iterator[F]:
    """A started fake; stopping one takes half a second (serve_forever's poll), so most are shared."""
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture(scope="module")
def wecom_server() -> Iterator[FakeWeCom]:
    with running(FakeWeCom()) as fake:
        yield fake


@pytest.fixture
def wecom(wecom_server: FakeWeCom) -> FakeWeCom:
    wecom_server.reset()
    return wecom_server


@pytest.fixture(scope="module")
def feishu_server() -> Iterator[FakeFeishu]:
    with running(FakeFeishu(secret=FEISHU_SECRET)) as fake:
        yield fake


@pytest.fixture
def feishu(feishu_server: FakeFeishu) -> FakeFeishu:
    feishu_server.reset()
    return feishu_server


@pytest.fixture(scope="module")
def dingtalk_server() -> Iterator[FakeDingTalk]:
    with running(FakeDingTalk(secret=DINGTALK_SECRET)) as fake:
        yield fake


@pytest.fixture
def dingtalk(dingtalk_server: FakeDingTalk) -> FakeDingTalk:
    dingtalk_server.reset()
    return dingtalk_server


@pytest.fixture(scope="module")
def slack_server() -> Iterator[FakeSlack]:
    with running(FakeSlack()) as fake:
        yield fake


@pytest.fixture
def slack(slack_server: FakeSlack) -> FakeSlack:
    slack_server.reset()
    return slack_server


def app_sink(fake: FakeWeCom, http: httpx.Client, **extra: Any) -> WeComAppSink:
    settings = {
        "type": "wecom_app",
        "corp_id": fake.corp_id,
        "corp_secret": fake.corp_secret,
        "agent_id": fake.agent_id,
        "api_url": fake.url,
        **extra,
    }
    return WeComAppSink("wecom-ops", WeComAppConfig.model_validate(settings), http)


def robot_sink(url: str, http: httpx.Client, **extra: Any) -> WeComRobotSink:
    settings = {"type": "wecom_robot", "webhook_url": url, **extra}
    return WeComRobotSink("wecom-robot", WeComRobotConfig.model_validate(settings), http)


def feishu_sink(url: str, http: httpx.Client, secret: str | None = FEISHU_SECRET) -> FeishuSink:
    return FeishuSink(
        "feishu-ops",
        FeishuConfig.model_validate({"type": "feishu", "webhook_url": url, "secret": secret}),
        http,
    )


def dingtalk_sink(
    url: str, http: httpx.Client, secret: str | None = DINGTALK_SECRET, **extra: Any
) -> DingTalkSink:
    settings = {"type": "dingtalk", "webhook_url": url, "secret": secret, **extra}
    return DingTalkSink("dingtalk-ops", DingTalkConfig.model_validate(settings), http)


def slack_sink(url: str, http: httpx.Client) -> SlackSink:
    return SlackSink("slack-ops", SlackConfig.model_validate({"type": "slack", "webhook_url": url}), http)


def utf8(text: str) -> int:
    return len(text.encode("utf-8"))


# ---------------------------------------------------------------- WeCom application messages


def test_wecom_app_sends_markdown_and_caches_the_token(wecom: FakeWeCom, http: httpx.Client) -> None:
    sink = app_sink(wecom, http, to_party="2|3")
    first = sink.send(notice(), slot())
    sink.send(notice(event="update", change="a new root cause"), slot())

    assert wecom.token_fetches == 1
    assert len(wecom.calls("GET", r"/cgi-bin/gettoken")) == 1
    message = wecom.messages[0]
    assert message["msgtype"] == "markdown"
    assert message["agentid"] == wecom.agent_id
    assert message["touser"] == "@all" and message["toparty"] == "2|3" and "totag" not in message
    content = message["markdown"]["content"]
    assert content.startswith("**[FIRING] LoginFailureRatio: ip_region=shanghai, user_type=admin**")
    assert "ip_region=shanghai, user_type=admin: admins in shanghai fail 40% of logins" in content
    assert f"[Full report]({REPORT_URL})" in content
    assert "Changed: a new root cause" in wecom.messages[1]["markdown"]["content"]
    assert first.detail.startswith("sent markdown, ") and "shortened" not in first.detail
    assert first.ticket is None and not WeComAppSink.tickets


def test_wecom_app_refetches_the_token_after_42001(wecom: FakeWeCom, http: httpx.Client) -> None:
    sink = app_sink(wecom, http)
    sink.send(notice(), slot())
    wecom.expire_tokens()  # WeCom may invalidate a token before expires_in
    sink.send(notice(), slot())

    assert wecom.token_fetches == 2
    sends = wecom.calls("POST", r"/cgi-bin/message/send")
    tokens = [req.arg("access_token") or "" for req in sends]
    assert len(sends) == 3  # ok, 42001, ok with the new token
    assert tokens[0] == tokens[1] != tokens[2]
    assert tokens[2].startswith("token-2-")
    assert len(wecom.messages) == 2


def test_wecom_app_refreshes_the_token_before_it_expires(http: httpx.Client) -> None:
    with running(FakeWeCom(expires_in=1)) as fake:  # the sink keeps it half of a short lifetime
        sink = app_sink(fake, http)
        sink.send(notice(), slot())
        time.sleep(0.7)
        sink.send(notice(), slot())
        assert fake.token_fetches == 2
        assert len(fake.calls("POST", r"/cgi-bin/message/send")) == 2  # no 42001 round trip


def test_wecom_app_gives_up_when_a_fresh_token_is_refused_too(wecom: FakeWeCom, http: httpx.Client) -> None:
    wecom.fail_next(Answer(200, error(42001, "access_token expired")), path=r"/message/send", times=2)
    with pytest.raises(DeliveryError) as caught:
        app_sink(wecom, http).send(notice(), slot())
    assert wecom.token_fetches == 2
    assert "errcode 42001" in str(caught.value) and "freshly fetched" in str(caught.value)
    assert "token-" not in str(caught.value)


def test_wecom_app_shortens_chinese_text_by_bytes(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = app_sink(wecom, http).send(notice(summary=CHINESE * 60), slot())
    content = wecom.messages[0]["markdown"]["content"]
    assert utf8(content) <= 2048 < utf8(CHINESE * 60)
    assert CHINESE[:20] in content and "\ufffd" not in content
    assert content.endswith(f"[full report]({REPORT_URL})")
    assert "shortened to 2048 bytes; no chart image" in outcome.detail


def test_wecom_app_shortens_a_huge_report_to_2048_bytes(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = app_sink(wecom, http).send(huge(), slot())
    content = wecom.messages[0]["markdown"]["content"]
    assert utf8(content) <= 2048
    assert "… shortened to fit" in content and REPORT_URL in content
    assert "shortened to 2048 bytes" in outcome.detail


def test_wecom_app_resolved_mentions_the_duration(wecom: FakeWeCom, http: httpx.Client) -> None:
    app_sink(wecom, http).send(resolved(), slot())
    content = wecom.messages[0]["markdown"]["content"]
    assert content.startswith("**[RESOLVED]")
    assert "lasted 4m 05s" in content


def test_wecom_app_test_event(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = app_sink(wecom, http).send(notice(event="test"), slot())
    assert wecom.messages[0]["markdown"]["content"] == "alertsleuth test message from sink wecom-ops"
    assert outcome.detail.startswith("sent")


def test_wecom_app_bad_secret_fails_without_leaking_it(wecom: FakeWeCom, http: httpx.Client) -> None:
    sink = app_sink(wecom, http, corp_secret="wrong-secret-value-123")
    with pytest.raises(DeliveryError) as caught:
        sink.send(notice(), slot())
    assert not caught.value.retryable
    assert "errcode 40001" in str(caught.value) and "gettoken" in str(caught.value)
    assert "wrong-secret-value-123" not in str(caught.value)
    assert not wecom.calls("POST", r"/message/send")


def test_wecom_app_errors_never_show_the_access_token(wecom: FakeWeCom, http: httpx.Client) -> None:
    token = "token-1-" + "x" * 40  # the first token the fake issues
    wecom.fail_next(
        Answer(200, error(81013, f"user & party & tag all invalid ({token})")), path=r"/message/send"
    )
    with pytest.raises(DeliveryError) as caught:
        app_sink(wecom, http).send(notice(), slot())
    assert not caught.value.retryable and "errcode 81013" in str(caught.value)
    assert token not in str(caught.value) and wecom.corp_secret not in str(caught.value)


def test_wecom_app_rate_limit_is_retryable(wecom: FakeWeCom, http: httpx.Client) -> None:
    wecom.rate_limit(path=r"/message/send")
    with pytest.raises(DeliveryError) as caught:
        app_sink(wecom, http).send(notice(), slot())
    assert caught.value.retryable and "45009" in str(caught.value)


def test_wecom_app_reports_recipients_wecom_skipped(wecom: FakeWeCom, http: httpx.Client) -> None:
    wecom.fail_next(
        Answer(200, {"errcode": 0, "errmsg": "ok", "invaliduser": "ghost"}), path=r"/message/send"
    )
    outcome = app_sink(wecom, http, to_user="ghost|alice").send(notice(), slot())
    assert "invalid users ghost" in outcome.detail


# ---------------------------------------------------------------- WeCom group robots


def test_wecom_robot_sends_markdown(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = robot_sink(wecom.robot_url, http).send(notice(), slot())
    body = wecom.robot_messages[0]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["content"].startswith("**[FIRING] LoginFailureRatio")
    assert outcome.detail.startswith("sent markdown")


def test_wecom_robot_shortens_to_4096_bytes(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = robot_sink(wecom.robot_url, http).send(huge(), slot())
    content = wecom.robot_messages[0]["markdown"]["content"]
    assert 2048 < utf8(content) <= 4096
    assert content.endswith(f"[full report]({REPORT_URL})")
    assert "shortened to 4096 bytes; no chart image" in outcome.detail


def test_wecom_robot_bad_key_fails_without_leaking_it(wecom: FakeWeCom, http: httpx.Client) -> None:
    url = f"{wecom.url}/cgi-bin/webhook/send?key=00000000-dead-beef-0000-000000000000"
    with pytest.raises(DeliveryError) as caught:
        robot_sink(url, http).send(notice(), slot())
    assert not caught.value.retryable and "errcode 93000" in str(caught.value)
    assert "dead-beef" not in str(caught.value) and "key=" not in str(caught.value)


def test_wecom_robot_rate_limit_waits_a_minute(wecom: FakeWeCom, http: httpx.Client) -> None:
    wecom.rate_limit(path=r"/webhook/send")
    with pytest.raises(DeliveryError) as caught:
        robot_sink(wecom.robot_url, http).send(notice(), slot())
    assert caught.value.retryable and caught.value.retry_after == 60.0


# ---------------------------------------------------------------- WeCom chart images


def png(width: int = 64, height: int = 32) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


SIGNAL = png()
CHARTS = [("r-3f9a1c2b.signal.png", SIGNAL), ("r-3f9a1c2b.cause-1.png", png(16, 16))]


def charted(**changes: Any) -> Notice:
    return notice(charts=lambda: list(CHARTS), **changes)


def test_wecom_robot_sends_the_signal_chart_after_the_markdown(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = robot_sink(wecom.robot_url, http).send(charted(), slot())
    markdown, image = wecom.robot_messages  # both accepted: the fake checked base64, md5, size, type
    assert markdown["msgtype"] == "markdown" and image["msgtype"] == "image"
    assert base64.b64decode(image["image"]["base64"]) == SIGNAL  # the signal chart, not cause-1
    assert image["image"]["md5"] == hashlib.md5(SIGNAL).hexdigest()
    assert outcome.detail.startswith("sent markdown") and "; sent chart image, " in outcome.detail


def test_wecom_robot_sends_an_image_on_update_but_not_resolved_or_test(
    wecom: FakeWeCom, http: httpx.Client
) -> None:
    sink = robot_sink(wecom.robot_url, http)
    sink.send(charted(event="update", change="a new root cause"), slot())
    assert [m["msgtype"] for m in wecom.robot_messages] == ["markdown", "image"]
    sink.send(dataclasses.replace(resolved(), charts=lambda: list(CHARTS)), slot())
    outcome = sink.send(charted(event="test"), slot())
    assert [m["msgtype"] for m in wecom.robot_messages] == ["markdown", "image", "markdown", "markdown"]
    assert outcome.detail == "sent test message"


def test_wecom_fake_refuses_a_robot_image_whose_md5_is_wrong(wecom: FakeWeCom, http: httpx.Client) -> None:
    body = {"msgtype": "image", "image": {"base64": base64.b64encode(SIGNAL).decode(), "md5": "0" * 32}}
    answer = http.post(wecom.robot_url, json=body).json()
    assert answer["errcode"] == 301019 and not wecom.robot_messages


def test_wecom_app_uploads_the_chart_then_sends_its_media_id(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = app_sink(wecom, http, to_party="2|3").send(charted(), slot())
    upload = wecom.calls("POST", r"/cgi-bin/media/upload")[0]
    assert upload.arg("type") == "image" and upload.headers["content-type"].startswith("multipart/form-data")
    (media_id, media), *rest = wecom.media.items()
    assert not rest and media.data == SIGNAL
    assert media.filename == "r-3f9a1c2b.signal.png" and media.content_type == "image/png"
    markdown, image = wecom.messages
    assert markdown["msgtype"] == "markdown"
    assert image["msgtype"] == "image" and image["image"] == {"media_id": media_id}
    assert image["agentid"] == wecom.agent_id and image["touser"] == "@all" and image["toparty"] == "2|3"
    assert wecom.token_fetches == 1  # one cached token for all three calls
    assert "; sent chart image, " in outcome.detail


def test_wecom_app_image_with_an_unknown_media_id_is_refused(wecom: FakeWeCom, http: httpx.Client) -> None:
    sink = app_sink(wecom, http)
    sink.send(notice(event="test"), slot())  # fetches a token
    token = wecom.calls("POST", r"/message/send")[0].arg("access_token")
    body = {"touser": "@all", "msgtype": "image", "agentid": wecom.agent_id, "image": {"media_id": "nope"}}
    answer = http.post(f"{wecom.url}/cgi-bin/message/send", params={"access_token": token}, json=body).json()
    assert answer["errcode"] == 40007


def test_wecom_images_false_sends_no_image(wecom: FakeWeCom, http: httpx.Client) -> None:
    drawn: list[bool] = []

    def charts() -> list[tuple[str, bytes]]:
        drawn.append(True)
        return list(CHARTS)

    robot = robot_sink(wecom.robot_url, http, images=False).send(notice(charts=charts), slot())
    app = app_sink(wecom, http, images=False).send(notice(charts=charts), slot())
    assert [m["msgtype"] for m in wecom.robot_messages] == ["markdown"]
    assert [m["msgtype"] for m in wecom.messages] == ["markdown"]
    assert not wecom.calls("POST", r"/media/upload") and not drawn  # not even drawn
    assert "image" not in robot.detail and "image" not in app.detail


def test_wecom_skips_a_chart_over_2_mb_and_says_so(wecom: FakeWeCom, http: httpx.Client) -> None:
    big = SIGNAL + b"\0" * (2 * 1024 * 1024)  # a PNG signature, over 2 MB
    oversized = notice(charts=lambda: [("r.signal.png", big)])
    robot = robot_sink(wecom.robot_url, http).send(oversized, slot())
    app = app_sink(wecom, http).send(oversized, slot())
    assert len(wecom.robot_messages) == len(wecom.messages) == 1
    assert not wecom.calls("POST", r"/media/upload")
    for outcome in (robot, app):
        assert "chart image skipped: 2.1 MB is over WeCom's 2 MB limit" in outcome.detail


def test_wecom_says_when_there_is_no_chart(wecom: FakeWeCom, http: httpx.Client) -> None:
    outcome = robot_sink(wecom.robot_url, http).send(notice(), slot())  # no report, no charts
    assert outcome.detail.endswith("; no chart image: none drawn")
    assert len(wecom.robot_messages) == 1


def test_wecom_robot_image_failure_leaves_the_delivery_sent(
    wecom: FakeWeCom, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    def charts() -> list[tuple[str, bytes]]:  # drawn after the markdown went out: fail what comes next
        wecom.fail_next(Answer(200, error(-1, "system busy")), path=r"/webhook/send")
        return list(CHARTS)

    with caplog.at_level(logging.WARNING, logger="alertsleuth.delivery"):
        outcome = robot_sink(wecom.robot_url, http).send(notice(charts=charts), slot())
    assert [m["msgtype"] for m in wecom.robot_messages] == ["markdown"]
    assert len(wecom.calls("POST", r"/webhook/send")) == 2  # the image is not retried
    assert outcome.detail.startswith("sent markdown")
    assert (
        "; chart image failed (not retried): POST wecom robot webhook: errcode -1 system busy"
        in outcome.detail
    )
    assert wecom.robot_key not in outcome.detail
    assert "chart image of incident 42 failed" in caplog.text and wecom.robot_key not in caplog.text


def test_wecom_app_upload_failure_leaves_the_delivery_sent(wecom: FakeWeCom, http: httpx.Client) -> None:
    wecom.fail_next(Answer(200, error(40009, "invalid image size")), path=r"/media/upload")
    outcome = app_sink(wecom, http).send(charted(), slot())
    assert [m["msgtype"] for m in wecom.messages] == ["markdown"]
    assert "chart image failed (not retried): POST /cgi-bin/media/upload: errcode 40009" in outcome.detail
    assert "token-" not in outcome.detail


# ---------------------------------------------------------------- Feishu / Lark


def test_feishu_sends_a_signed_red_card(feishu: FakeFeishu, http: httpx.Client) -> None:
    outcome = feishu_sink(feishu.webhook_url, http).send(notice(), slot())
    body = feishu.cards[0]  # accepted: the fake verified timestamp and sign
    assert body["msg_type"] == "interactive"
    assert body["timestamp"].isdigit() and body["sign"]
    header = body["card"]["header"]
    assert header == {
        "title": {
            "tag": "plain_text",
            "content": "[FIRING] LoginFailureRatio: ip_region=shanghai, user_type=admin",
        },
        "template": "red",
    }
    element = body["card"]["elements"][0]
    assert element["tag"] == "markdown"
    assert not element["content"].startswith("**[FIRING]")  # the header carries the title
    assert (
        "Login failures rose" in element["content"] and f"[Full report]({REPORT_URL})" in element["content"]
    )
    assert outcome.detail.startswith("sent card")


def test_feishu_resolved_card_is_green_with_the_duration(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu_sink(feishu.webhook_url, http).send(resolved(), slot())
    card = feishu.cards[0]["card"]
    assert card["header"]["template"] == "green"
    assert "lasted 4m 05s" in card["elements"][0]["content"]


def test_feishu_without_a_secret_sends_no_signature(http: httpx.Client) -> None:
    with running(FakeFeishu()) as fake:
        feishu_sink(fake.webhook_url, http, secret=None).send(notice(event="test"), slot())
        body = fake.cards[0]
        assert "sign" not in body and "timestamp" not in body
        assert body["card"]["elements"][0]["content"] == "alertsleuth test message from sink feishu-ops"


def test_feishu_wrong_secret_is_refused_without_leaking(feishu: FakeFeishu, http: httpx.Client) -> None:
    with pytest.raises(DeliveryError) as caught:
        feishu_sink(feishu.webhook_url, http, secret="not-the-secret-42").send(notice(), slot())
    assert not caught.value.retryable and "code 19021" in str(caught.value)
    assert "not-the-secret-42" not in str(caught.value) and feishu.token not in str(caught.value)


def test_feishu_timestamp_outside_the_hour_is_refused(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu.clock_skew = 2 * 3600  # Feishu's clock two hours ahead of ours
    with pytest.raises(DeliveryError) as caught:
        feishu_sink(feishu.webhook_url, http).send(notice(), slot())
    assert "code 19021" in str(caught.value) and not caught.value.retryable
    feishu.clock_skew = 3000  # within the hour: accepted
    feishu_sink(feishu.webhook_url, http).send(notice(), slot())
    assert len(feishu.cards) == 1


def test_feishu_unknown_hook_is_not_retried(feishu: FakeFeishu, http: httpx.Client) -> None:
    url = feishu.webhook_url.replace(feishu.token, "11111111-2222-3333-4444-555555555555")
    with pytest.raises(DeliveryError) as caught:
        feishu_sink(url, http).send(notice(), slot())
    assert not caught.value.retryable and "19001" in str(caught.value)
    assert "11111111-2222" not in str(caught.value)


def test_feishu_keeps_the_body_within_20_kb(feishu: FakeFeishu, http: httpx.Client) -> None:
    outcome = feishu_sink(feishu.webhook_url, http).send(huge(), slot())
    sent = feishu.calls("POST", r"/hook/")[0].body
    assert 15_000 < len(sent) <= 20_000
    assert REPORT_URL in feishu.cards[0]["card"]["elements"][0]["content"]
    assert "shortened" in outcome.detail


def test_feishu_sends_chinese_as_utf8(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu_sink(feishu.webhook_url, http).send(notice(summary=CHINESE), slot())
    assert CHINESE.encode("utf-8") in feishu.calls("POST", r"/hook/")[0].body
    assert CHINESE in feishu.cards[0]["card"]["elements"][0]["content"]


def test_feishu_rate_limit_is_retryable(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu.rate_limit()
    with pytest.raises(DeliveryError) as caught:
        feishu_sink(feishu.webhook_url, http).send(notice(), slot())
    assert caught.value.retryable and "11232" in str(caught.value)


def test_feishu_bad_request_is_not_retried(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu.fail_next(Answer(200, {"code": 9499, "data": {}, "msg": "Bad Request"}))
    with pytest.raises(DeliveryError) as caught:
        feishu_sink(feishu.webhook_url, http).send(notice(), slot())
    assert not caught.value.retryable


# ---------------------------------------------------------------- DingTalk


def test_dingtalk_sends_signed_markdown_with_mentions(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    sink = dingtalk_sink(dingtalk.webhook_url, http, at_mobiles=["13800001111"])
    outcome = sink.send(notice(), slot())
    request = dingtalk.calls("POST", r"/robot/send")[0]
    assert request.arg("access_token") == dingtalk.access_token  # kept next to timestamp and sign
    assert request.arg("timestamp") and request.arg("sign")
    body = dingtalk.messages[0]
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "[FIRING] LoginFailureRatio: ip_region=shanghai, user_type=admin"
    assert body["markdown"]["text"].startswith("@13800001111\n\n**[FIRING]")
    assert body["at"] == {"atMobiles": ["13800001111"], "isAtAll": False}
    assert outcome.detail.startswith("sent markdown")


def test_dingtalk_resolved_mentions_the_duration(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    dingtalk_sink(dingtalk.webhook_url, http).send(resolved(), slot())
    assert "lasted 4m 05s" in dingtalk.messages[0]["markdown"]["text"]
    assert "at" not in dingtalk.messages[0]


def test_dingtalk_wrong_secret_is_refused_without_leaking(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    with pytest.raises(DeliveryError) as caught:
        dingtalk_sink(dingtalk.webhook_url, http, secret="SECwrongwrongwrong").send(notice(), slot())
    text = str(caught.value)
    assert not caught.value.retryable and "errcode 310000" in text and "sign not match" in text
    assert "SECwrongwrongwrong" not in text and dingtalk.access_token not in text


def test_dingtalk_timestamp_outside_the_hour_is_refused(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    dingtalk.clock_skew = -2 * 3600
    with pytest.raises(DeliveryError) as caught:
        dingtalk_sink(dingtalk.webhook_url, http).send(notice(), slot())
    assert "invalid timestamp" in str(caught.value)


def test_dingtalk_unknown_access_token_is_not_retried(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    url = f"{dingtalk.url}/robot/send?access_token=ffff0000ffff0000"
    with pytest.raises(DeliveryError) as caught:
        dingtalk_sink(url, http).send(notice(), slot())
    assert not caught.value.retryable and "token is not exist" in str(caught.value)
    assert "ffff0000ffff0000" not in str(caught.value)


def test_dingtalk_keeps_the_body_within_20000_bytes(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    outcome = dingtalk_sink(dingtalk.webhook_url, http).send(huge(), slot())
    assert 15_000 < len(dingtalk.calls("POST", r"/robot/send")[0].body) <= 20_000
    assert dingtalk.messages[0]["markdown"]["text"].endswith(f"[full report]({REPORT_URL})")
    assert "shortened to fit 20000 bytes" in outcome.detail


def test_dingtalk_rate_limit_waits_ten_minutes(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    dingtalk.rate_limit()
    with pytest.raises(DeliveryError) as caught:
        dingtalk_sink(dingtalk.webhook_url, http).send(notice(), slot())
    assert caught.value.retryable and caught.value.retry_after == 600.0


# ---------------------------------------------------------------- Slack


def test_slack_sends_header_section_and_context(slack: FakeSlack, http: httpx.Client) -> None:
    outcome = slack_sink(slack.webhook_url, http).send(notice(), slot())
    body = slack.messages[0]
    assert body["text"] == "[FIRING] LoginFailureRatio: ip_region=shanghai, user_type=admin"
    header, section, context = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith("*[FIRING] LoginFailureRatio")
    assert f"<{REPORT_URL}|Full report>" in section["text"]["text"]
    assert context["type"] == "context" and "incident 42" in context["elements"][0]["text"]
    assert outcome.detail.startswith("sent blocks")


def test_slack_escapes_mrkdwn_control_characters(slack: FakeSlack, http: httpx.Client) -> None:
    title = "[FIRING] Errors: path=/a<b>&c"
    slack_sink(slack.webhook_url, http).send(notice(title=title, summary="p99 > 2s & rising"), slot())
    header, section, _ = slack.messages[0]["blocks"]
    assert header["text"]["text"] == title  # plain_text is shown as is
    assert "*[FIRING] Errors: path=/a&lt;b&gt;&amp;c*" in section["text"]["text"]
    assert "p99 &gt; 2s &amp; rising" in section["text"]["text"]
    assert f"<{REPORT_URL}|Full report>" in section["text"]["text"]  # links stay links


def test_slack_limits_header_and_section(slack: FakeSlack, http: httpx.Client) -> None:
    outcome = slack_sink(slack.webhook_url, http).send(dataclasses.replace(huge(), title="T" * 400), slot())
    header, section, _ = slack.messages[0]["blocks"]
    assert len(header["text"]["text"]) <= 150 and header["text"]["text"].endswith("…")
    assert len(section["text"]["text"]) <= 3000
    assert section["text"]["text"].endswith(f"<{REPORT_URL}|full report>")
    assert outcome.detail.endswith("shortened to 3000 characters")


def test_slack_counts_characters_not_bytes(slack: FakeSlack, http: httpx.Client) -> None:
    chinese = notice(summary=CHINESE * 60)  # ~2,200 characters, ~6,600 bytes
    outcome = slack_sink(slack.webhook_url, http).send(chinese, slot())
    text = slack.messages[0]["blocks"][1]["text"]["text"]
    assert CHINESE * 60 in text and utf8(text) > 3000 >= len(text)
    assert "shortened" not in outcome.detail


def test_slack_resolved_mentions_the_duration(slack: FakeSlack, http: httpx.Client) -> None:
    slack_sink(slack.webhook_url, http).send(resolved(), slot())
    assert "lasted 4m 05s" in slack.messages[0]["blocks"][1]["text"]["text"]


def test_slack_test_event(slack: FakeSlack, http: httpx.Client) -> None:
    outcome = slack_sink(slack.webhook_url, http).send(notice(event="test"), slot())
    assert slack.messages[0]["text"] == "alertsleuth test message from sink slack-ops"
    assert outcome.detail.startswith("sent")


def test_slack_rate_limit_carries_retry_after(slack: FakeSlack, http: httpx.Client) -> None:
    slack.rate_limit(retry_after=7)
    with pytest.raises(DeliveryError) as caught:
        slack_sink(slack.webhook_url, http).send(notice(), slot())
    assert caught.value.retryable and caught.value.retry_after == 7.0


def test_slack_invalid_token_fails_without_leaking(slack: FakeSlack, http: httpx.Client) -> None:
    url = slack.webhook_url.rsplit("/", 1)[0] + "/WRONGSECRETPATH0000000000"
    with pytest.raises(DeliveryError) as caught:
        slack_sink(url, http).send(notice(), slot())
    text = str(caught.value)
    assert not caught.value.retryable and "HTTP 403 invalid_token" in text
    assert "WRONGSECRETPATH" not in text and "T00000000" not in text


def test_slack_archived_channel_is_not_retried(slack: FakeSlack, http: httpx.Client) -> None:
    slack.archived = True
    with pytest.raises(DeliveryError) as caught:
        slack_sink(slack.webhook_url, http).send(notice(), slot())
    assert not caught.value.retryable and "HTTP 410 channel_is_archived" in str(caught.value)


def test_slack_bot_starts_the_incidents_thread_and_answers_in_it(http: httpx.Client) -> None:
    with running(FakeSlackAPI(bot_token="xoxb-1-2-abc")) as api:
        cfg = {"type": "slack", "bot_token": "xoxb-1-2-abc", "channel": "C0OPS", "api_url": api.api_url}
        sink = SlackSink("slack-bot", SlackConfig.model_validate(cfg), http)
        first = sink.send(notice(), slot())
        assert first.thread == ChatThreadRef("slack", "C0OPS", api.messages[0]["ts"])
        assert first.detail == f"posted to C0OPS as {api.messages[0]['ts']}"
        assert api.messages[0]["channel"] == "C0OPS" and "thread_ts" not in api.messages[0]
        # later notices about the incident go in its thread, and start none
        later = sink.send(dataclasses.replace(resolved(), thread=first.thread), slot())
        assert later.thread is None and api.messages[1]["thread_ts"] == first.thread.thread
        assert api.messages[1]["blocks"][0]["text"]["text"].startswith("[RESOLVED]")
        # Slack's errors come as HTTP 200 {"ok": false}: rate limits are retried, the rest are not
        api.rate_limit()
        with pytest.raises(DeliveryError) as limited:
            sink.send(notice(), slot())
        assert limited.value.retryable and "ratelimited" in str(limited.value)
        wrong = SlackConfig.model_validate({**cfg, "bot_token": "xoxb-wrong"})
        with pytest.raises(DeliveryError) as refused:
            SlackSink("slack-bot", wrong, http).send(notice(), slot())
        assert not refused.value.retryable and "invalid_auth" in str(refused.value)
        assert "xoxb" not in str(refused.value)
    with pytest.raises(ValidationError, match="channel: required with bot_token"):
        SlackConfig.model_validate({"type": "slack", "bot_token": "xoxb-1"})
    with pytest.raises(ValidationError, match="either webhook_url, or bot_token"):
        SlackConfig.model_validate({"type": "slack"})


# ---------------------------------------------------------------- configuration


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ValidationError) as missing:
        WeComAppConfig.model_validate({"type": "wecom_app", "corp_id": "ww1", "corp_secret": "s3cr3t-value"})
    assert "agent_id" in str(missing.value)

    with pytest.raises(ValidationError) as unknown:
        SlackConfig.model_validate(
            {"type": "slack", "webhook_url": "https://hooks.slack.com/x", "channel": "#ops"}
        )
    assert "channel" in str(unknown.value)

    with pytest.raises(ValidationError) as nobody:
        WeComAppConfig.model_validate(
            {"type": "wecom_app", "corp_id": "ww1", "corp_secret": "s", "agent_id": 1, "to_user": ""}
        )
    assert "to_user" in str(nobody.value)


def test_config_errors_never_echo_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    cases: list[tuple[type[Any], dict[str, Any], str]] = [
        (WeComRobotConfig, {"type": "wecom_robot", "webhook_url": "just-the-key-1234"}, "just-the-key-1234"),
        (
            DingTalkConfig,
            {"type": "dingtalk", "webhook_url": "https://oapi.dingtalk.com/robot/send?tok=AB12"},
            "AB12",
        ),
        (FeishuConfig, {"type": "feishu", "webhook_url": "hook-token-5678"}, "hook-token-5678"),
        (SlackConfig, {"type": "slack", "webhook_url": "hooks.slack.com/services/T1/B2/SECRET9"}, "SECRET9"),
    ]
    for model, settings, secret in cases:
        with pytest.raises(ValidationError) as caught:
            model.model_validate(settings)
        assert "webhook_url" in str(caught.value) and secret not in str(caught.value)

    monkeypatch.delenv("ALERTSLEUTH_TEST_UNSET_HOOK", raising=False)
    with pytest.raises(ValidationError) as unset:
        FeishuConfig.model_validate({"type": "feishu", "webhook_url": {"env": "ALERTSLEUTH_TEST_UNSET_HOOK"}})
    assert "webhook_url" in str(unset.value) and "ALERTSLEUTH_TEST_UNSET_HOOK" in str(unset.value)


def test_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, slack: FakeSlack, http: httpx.Client
) -> None:
    monkeypatch.setenv("ALERTSLEUTH_TEST_SLACK_HOOK", slack.webhook_url)
    config = SlackConfig.model_validate(
        {"type": "slack", "webhook_url": {"env": "ALERTSLEUTH_TEST_SLACK_HOOK"}}
    )
    assert slack.path not in repr(config)
    SlackSink("slack-env", config, http).send(notice(), slot())
    assert len(slack.messages) == 1


# ---------------------------------------------------------------- the signal chart by its signed link

CHART_URL = "https://alertsleuth.example.com/charts/r-3f9a1c2b/signal.png?exp=1763786400&sig=abc_-123"


def test_slack_shows_the_signed_chart_as_an_image_block(slack: FakeSlack, http: httpx.Client) -> None:
    for event in ("firing", "update"):
        slack_sink(slack.webhook_url, http).send(notice(event=event, chart_url=CHART_URL), slot())
    for body in slack.messages:
        header, section, image, context = body["blocks"]
        assert image == {"type": "image", "image_url": CHART_URL, "alt_text": "LoginFailureRatio signal"}
        assert context["type"] == "context"


def test_slack_shows_no_image_when_resolved_or_without_a_link(slack: FakeSlack, http: httpx.Client) -> None:
    sink = slack_sink(slack.webhook_url, http)
    sink.send(dataclasses.replace(resolved(), chart_url=CHART_URL), slot())
    sink.send(notice(), slot())
    sink.send(dataclasses.replace(notice(chart_url=CHART_URL), chart_url=None), slot())
    assert all("image" not in [b["type"] for b in body["blocks"]] for body in slack.messages)
    assert slack.messages[1] == slack.messages[2]  # no link: the message is as before


def test_slack_keeps_the_image_in_a_shortened_message(slack: FakeSlack, http: httpx.Client) -> None:
    outcome = slack_sink(slack.webhook_url, http).send(
        dataclasses.replace(huge(), chart_url=CHART_URL), slot()
    )
    blocks = slack.messages[0]["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "image", "context"]
    assert outcome.detail.endswith("shortened to 3000 characters")


def test_dingtalk_markdown_shows_the_signed_chart(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    dingtalk_sink(dingtalk.webhook_url, http).send(notice(chart_url=CHART_URL), slot())
    text = dingtalk.messages[0]["markdown"]["text"]
    assert text.endswith(f"\n\n![signal]({CHART_URL})")
    assert f"[Full report]({REPORT_URL})" in text


def test_dingtalk_keeps_the_image_within_20_kb(dingtalk: FakeDingTalk, http: httpx.Client) -> None:
    big = dataclasses.replace(huge(), summary=CHINESE * 400, chart_url=CHART_URL)
    outcome = dingtalk_sink(dingtalk.webhook_url, http).send(big, slot())
    request = dingtalk.calls("POST", r"/robot/send")[0]
    assert len(request.body) <= 20_000
    assert dingtalk.messages[0]["markdown"]["text"].endswith(f"![signal]({CHART_URL})")
    assert "shortened" in outcome.detail


def test_dingtalk_without_a_link_or_resolved_shows_no_image(
    dingtalk: FakeDingTalk, http: httpx.Client
) -> None:
    sink = dingtalk_sink(dingtalk.webhook_url, http)
    sink.send(dataclasses.replace(resolved(), chart_url=CHART_URL), slot())
    sink.send(notice(), slot())
    assert all("![signal]" not in m["markdown"]["text"] for m in dingtalk.messages)
