"""Feishu / Lark cards with the report's chart: a custom app's tenant_access_token (cached), the image
upload, the card's `img` element, and every way the image can fail without costing the card. Against
the loopback fake (tests/fakes/feishu.py), which checks the credentials, the bearer token, the
multipart fields and the image's bytes, and verifies the webhook's signature."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from server.delivery.base import ChatThreadRef, DeliveryError
from server.delivery.sinks.feishu import FeishuConfig, FeishuSink
from tests.fakes.api import Answer
from tests.fakes.feishu import FakeFeishu, signature
from tests.fakes.wecom import multipart_files
from tests.server.delivery.test_chat_sinks import (
    CHARTS,
    FEISHU_SECRET,
    SIGNAL,
    charted,
    huge,
    notice,
    resolved,
    running,
    slot,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def feishu_server() -> Iterator[FakeFeishu]:
    with running(FakeFeishu(secret=FEISHU_SECRET)) as fake:
        yield fake


@pytest.fixture
def feishu(feishu_server: FakeFeishu) -> FakeFeishu:
    feishu_server.reset()
    return feishu_server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def app_sink(fake: FakeFeishu, http: httpx.Client, **extra: Any) -> FeishuSink:
    settings = {
        "type": "feishu",
        "webhook_url": fake.webhook_url,
        "secret": FEISHU_SECRET,
        "app_id": fake.app_id,
        "app_secret": fake.app_secret,
        "api_url": fake.url,
        **extra,
    }
    return FeishuSink("feishu-ops", FeishuConfig.model_validate(settings), http)


def images_of(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in card["card"]["elements"] if e["tag"] == "img"]


def test_feishu_card_carries_the_uploaded_chart(feishu: FakeFeishu, http: httpx.Client) -> None:
    outcome = app_sink(feishu, http).send(charted(), slot())

    token_call = feishu.calls("POST", r"/tenant_access_token/internal")[0]
    assert token_call.json == {"app_id": feishu.app_id, "app_secret": feishu.app_secret}
    upload = feishu.calls("POST", r"/open-apis/im/v1/images")[0]
    assert upload.headers["authorization"] == f"Bearer {next(iter(feishu.tenant_tokens))}"
    parts = multipart_files(upload.headers["content-type"], upload.body)
    assert parts["image_type"][2] == b"message"
    filename, content_type, data = parts["image"]
    assert filename == "r-3f9a1c2b.signal.png" and content_type == "image/png"
    assert data == SIGNAL and data.startswith(PNG_MAGIC)  # the signal chart, not cause-1

    (key, uploaded), *more = feishu.images.items()
    assert not more and uploaded == SIGNAL
    body = feishu.cards[0]  # accepted: the fake verified the signature and that it issued the key
    assert body["timestamp"].isdigit() and body["sign"]
    markdown, image = body["card"]["elements"]
    assert markdown["tag"] == "markdown" and "Login failures rose" in markdown["content"]
    assert image == {
        "tag": "img",
        "img_key": key,
        "alt": {"tag": "plain_text", "content": "LoginFailureRatio signal"},
    }
    assert outcome.detail.startswith("sent card, ") and "; with the chart image (" in outcome.detail


def test_feishu_token_is_cached_across_sends(feishu: FakeFeishu, http: httpx.Client) -> None:
    sink = app_sink(feishu, http)
    sink.send(charted(), slot())
    sink.send(charted(event="update", change="a new root cause"), slot())

    assert feishu.token_fetches == 1
    assert len(feishu.calls("POST", r"/tenant_access_token/")) == 1
    uploads = feishu.calls("POST", r"/im/v1/images")
    assert len(uploads) == 2 and len({u.headers["authorization"] for u in uploads}) == 1
    assert [len(images_of(card)) for card in feishu.cards] == [1, 1]
    assert images_of(feishu.cards[0])[0]["img_key"] != images_of(feishu.cards[1])[0]["img_key"]


def test_feishu_token_is_fetched_again_before_it_expires(http: httpx.Client) -> None:
    with running(FakeFeishu(expire=1)) as fake:  # the sink keeps a short-lived token half its life
        sink = app_sink(fake, http, secret=None)
        sink.send(charted(), slot())
        time.sleep(0.7)
        sink.send(charted(), slot())
        assert fake.token_fetches == 2
        assert [len(images_of(card)) for card in fake.cards] == [1, 1]


def test_feishu_token_failure_sends_the_card_without_the_image(
    feishu: FakeFeishu, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-app-secret-0123456789"
    with caplog.at_level(logging.WARNING, logger="alertsleuth.delivery"):
        outcome = app_sink(feishu, http, app_secret=wrong).send(charted(), slot())

    assert len(feishu.cards) == 1 and not images_of(feishu.cards[0])  # delivered, bare
    assert not feishu.calls("POST", r"/im/v1/images") and not feishu.images
    assert outcome.detail.startswith("sent card, ")
    assert (
        "; without the chart image: POST /open-apis/auth/v3/tenant_access_token/internal: code 10014"
        in outcome.detail
    )
    assert "app secret invalid" in outcome.detail and wrong not in outcome.detail
    assert "chart image of incident 42 not uploaded" in caplog.text and wrong not in caplog.text


def test_feishu_token_code_in_a_200_answer_is_a_failure(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu.fail_next(Answer(200, {"code": 10003, "msg": "invalid param"}), path=r"/tenant_access_token/")
    outcome = app_sink(feishu, http).send(charted(), slot())
    assert len(feishu.cards) == 1 and not images_of(feishu.cards[0])
    assert "without the chart image: " in outcome.detail and "code 10003 invalid param" in outcome.detail


def test_feishu_upload_error_code_sends_the_card_without_the_image(
    feishu: FakeFeishu, http: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    refused = {"code": 234007, "msg": "App does not enable bot feature.", "data": {}}
    feishu.fail_next(Answer(200, refused), path=r"/im/v1/images")
    sink = app_sink(feishu, http)
    with caplog.at_level(logging.WARNING, logger="alertsleuth.delivery"):
        outcome = sink.send(charted(), slot())

    assert len(feishu.cards) == 1 and not images_of(feishu.cards[0])
    assert (
        "; without the chart image: POST /open-apis/im/v1/images: code 234007 App does not enable bot"
        in outcome.detail
    )
    token = next(iter(feishu.tenant_tokens))
    assert token not in outcome.detail and token not in caplog.text
    assert "not uploaded, sending the card without it" in caplog.text

    sink.send(charted(), slot())  # the token was dropped with the failure: the next card fetches one
    assert feishu.token_fetches == 2 and len(images_of(feishu.cards[1])) == 1


def test_feishu_upload_with_a_refused_token_sends_the_card_bare(
    feishu: FakeFeishu, http: httpx.Client
) -> None:
    sink = app_sink(feishu, http)
    sink.send(charted(), slot())
    feishu.expire_tokens()  # refused before its `expire`
    outcome = sink.send(charted(), slot())
    assert "code 99991663" in outcome.detail and not images_of(feishu.cards[1])
    sink.send(charted(), slot())
    assert feishu.token_fetches == 2 and len(images_of(feishu.cards[2])) == 1


def test_feishu_card_refused_with_its_image_is_sent_without(feishu: FakeFeishu, http: httpx.Client) -> None:
    feishu.fail_next(Answer(200, {"code": 9499, "data": {}, "msg": "Bad Request"}), path=r"/hook/")
    outcome = app_sink(feishu, http).send(charted(), slot())
    hooks = feishu.calls("POST", r"/hook/")
    assert len(hooks) == 2 and len(feishu.cards) == 1 and not images_of(feishu.cards[0])
    assert "without the chart image: the card with it was refused: " in outcome.detail


def test_feishu_rate_limited_card_with_an_image_is_retried_later(
    feishu: FakeFeishu, http: httpx.Client
) -> None:
    feishu.rate_limit()
    with pytest.raises(DeliveryError) as caught:
        app_sink(feishu, http).send(charted(), slot())
    assert caught.value.retryable and len(feishu.calls("POST", r"/hook/")) == 1


def test_feishu_fake_refuses_an_img_key_it_did_not_issue(feishu: FakeFeishu, http: httpx.Client) -> None:
    card = {
        "header": {"title": {"tag": "plain_text", "content": "t"}},
        "elements": [{"tag": "img", "img_key": "img_v3_nope", "alt": {"tag": "plain_text", "content": ""}}],
    }
    timestamp = str(int(time.time()))
    body = {"timestamp": timestamp, "sign": signature(timestamp, FEISHU_SECRET)}
    answer = http.post(feishu.webhook_url, json={**body, "msg_type": "interactive", "card": card}).json()
    assert answer["code"] == 9499 and "img_key not found" in answer["msg"] and not feishu.cards


def test_feishu_fake_checks_the_upload(feishu: FakeFeishu, http: httpx.Client) -> None:
    url = f"{feishu.url}/open-apis/im/v1/images"
    token = http.post(
        f"{feishu.url}/open-apis/auth/v3/tenant_access_token/internal",
        json={"app_id": feishu.app_id, "app_secret": feishu.app_secret},
    ).json()["tenant_access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    png = {"image": ("a.png", SIGNAL, "image/png")}
    no_token = http.post(url, data={"image_type": "message"}, files=png)
    assert no_token.status_code == 400 and no_token.json()["code"] == 99991663
    not_png = http.post(url, headers=bearer, data={"image_type": "message"}, files={"image": ("a", b"text")})
    assert not_png.json()["code"] == 234001
    no_type = http.post(url, headers=bearer, files=png)
    assert no_type.json()["code"] == 234001
    good = http.post(url, headers=bearer, data={"image_type": "message"}, files=png).json()
    assert good["code"] == 0 and feishu.images[good["data"]["image_key"]] == SIGNAL


def test_feishu_sends_no_image_on_resolved_or_test_or_without_charts(
    feishu: FakeFeishu, http: httpx.Client
) -> None:
    sink = app_sink(feishu, http)
    sink.send(dataclasses.replace(resolved(), charts=lambda: list(CHARTS)), slot())
    test = sink.send(charted(event="test"), slot())
    bare = sink.send(notice(), slot())  # no report: no chart
    assert not feishu.calls("POST", r"/open-apis/(auth|im)/") and feishu.token_fetches == 0
    assert all(not images_of(card) for card in feishu.cards) and len(feishu.cards) == 3
    assert test.detail == "sent test card"
    assert bare.detail.endswith("; no chart image: none drawn")


def test_feishu_without_an_app_never_draws_or_uploads(feishu: FakeFeishu, http: httpx.Client) -> None:
    drawn: list[bool] = []

    def charts() -> list[tuple[str, bytes]]:
        drawn.append(True)
        return list(CHARTS)

    settings = {"type": "feishu", "webhook_url": feishu.webhook_url, "secret": FEISHU_SECRET}
    sink = FeishuSink("feishu-ops", FeishuConfig.model_validate(settings), http)
    outcome = sink.send(notice(charts=charts), slot())
    assert not drawn and not feishu.calls("POST", r"/open-apis/(auth|im)/")
    assert len(feishu.cards) == 1 and not images_of(feishu.cards[0])
    assert "image" not in outcome.detail


def test_feishu_skips_a_chart_over_10_mb(feishu: FakeFeishu, http: httpx.Client) -> None:
    big = SIGNAL + b"\0" * (10 * 1024 * 1024)
    outcome = app_sink(feishu, http).send(notice(charts=lambda: [("r.signal.png", big)]), slot())
    assert not feishu.calls("POST", r"/im/v1/images") and not images_of(feishu.cards[0])
    assert "chart image skipped: 10.5 MB is over Feishu's 10 MB limit" in outcome.detail


def test_feishu_card_with_an_image_stays_within_20_kb(feishu: FakeFeishu, http: httpx.Client) -> None:
    outcome = app_sink(feishu, http).send(dataclasses.replace(huge(), charts=lambda: list(CHARTS)), slot())
    assert len(feishu.calls("POST", r"/hook/")[0].body) <= 20_000
    assert len(images_of(feishu.cards[0])) == 1 and "shortened" in outcome.detail


def test_feishu_app_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"type": "feishu", "webhook_url": "https://open.feishu.cn/open-apis/bot/v2/hook/abc"}
    assert FeishuConfig.model_validate(base).api_url == "https://open.feishu.cn"

    with pytest.raises(ValidationError) as half:
        FeishuConfig.model_validate({**base, "app_id": "cli_x"})
    assert "app_secret" in str(half.value)

    monkeypatch.setenv("ALERTSLEUTH_TEST_FEISHU_APP_SECRET", "app-secret-from-env-42")
    lark = FeishuConfig.model_validate(
        {
            **base,
            "app_id": "cli_x",
            "app_secret": {"env": "ALERTSLEUTH_TEST_FEISHU_APP_SECRET"},
            "api_url": "https://open.larksuite.com/",
        }
    )
    assert lark.app_secret is not None and lark.app_secret.get_secret_value() == "app-secret-from-env-42"
    assert "app-secret-from-env-42" not in repr(lark) and lark.api_url == "https://open.larksuite.com"

    with pytest.raises(ValidationError) as bad_url:
        FeishuConfig.model_validate({**base, "api_url": "open.feishu.cn"})
    assert "api_url" in str(bad_url.value)

    monkeypatch.delenv("ALERTSLEUTH_TEST_UNSET_APP_SECRET", raising=False)
    with pytest.raises(ValidationError) as unset:
        FeishuConfig.model_validate(
            {**base, "app_id": "cli_x", "app_secret": {"env": "ALERTSLEUTH_TEST_UNSET_APP_SECRET"}}
        )
    assert "app_secret" in str(unset.value) and "ALERTSLEUTH_TEST_UNSET_APP_SECRET" in str(unset.value)


def test_feishu_app_posts_in_the_group_and_answers_in_the_incidents_thread(
    feishu: FakeFeishu, http: httpx.Client
) -> None:
    sink = app_sink(feishu, http, webhook_url=None, secret=None, chat_id="oc_5ad11d72b830411d72b836c20")
    first = sink.send(charted(), slot())
    [posted] = feishu.messages
    assert posted["receive_id"] == "oc_5ad11d72b830411d72b836c20" and images_of(posted)
    assert first.thread == ChatThreadRef("feishu", "oc_5ad11d72b830411d72b836c20", posted["message_id"])
    assert f"as {posted['message_id']}" in first.detail
    assert not feishu.calls("POST", r"/open-apis/bot/")  # no webhook
    later = sink.send(dataclasses.replace(resolved(), thread=first.thread), slot())
    assert later.thread is None
    assert (
        feishu.messages[1]["root"] == posted["message_id"] and feishu.messages[1]["reply_in_thread"] is True
    )
    # an expired token is dropped and fetched again on the retry
    feishu.expire_tokens()
    with pytest.raises(DeliveryError):
        sink.send(resolved(), slot())
    assert sink.send(resolved(), slot()).detail.startswith("sent card")
    with pytest.raises(ValidationError, match="either webhook_url, or chat_id"):
        FeishuConfig.model_validate({"type": "feishu"})
    with pytest.raises(ValidationError, match="chat_id: needs app_id"):
        FeishuConfig.model_validate({"type": "feishu", "chat_id": "oc_1"})
