"""The one fetch of each platform's access token (server/delivery/tokens.py), which the Feishu and WeCom
sinks and ChatOps' replies share: against the loopback fakes, the token and its lifetime, and errors
that name the documented endpoint, never carry the secret, and are retried only when worth it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from server.delivery.base import DeliveryError
from server.delivery.tokens import feishu_tenant_token, wecom_access_token
from tests.fakes.api import Answer
from tests.fakes.feishu import FakeFeishu
from tests.fakes.wecom import FakeWeCom, error
from tests.server.delivery.test_chat_sinks import running

FEISHU_ENDPOINT = "POST /open-apis/auth/v3/tenant_access_token/internal"
WECOM_ENDPOINT = "GET /cgi-bin/gettoken"


@pytest.fixture(scope="module")
def feishu() -> Iterator[FakeFeishu]:
    with running(FakeFeishu(expire=3600)) as fake:
        yield fake


@pytest.fixture(scope="module")
def wecom() -> Iterator[FakeWeCom]:
    with running(FakeWeCom()) as fake:
        yield fake


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def feishu_fetch(fake: FakeFeishu, http: httpx.Client, secret: str | None = None) -> tuple[str, float]:
    return feishu_tenant_token(http, f"{fake.url}/open-apis", fake.app_id, secret or fake.app_secret, 5.0)


def wecom_fetch(fake: FakeWeCom, http: httpx.Client, secret: str | None = None) -> tuple[str, float]:
    return wecom_access_token(http, f"{fake.url}/cgi-bin", fake.corp_id, secret or fake.corp_secret, 5.0)


def test_the_tokens_and_their_lifetimes(feishu: FakeFeishu, wecom: FakeWeCom, http: httpx.Client) -> None:
    token, lifetime = feishu_fetch(feishu, http)
    assert token in feishu.tenant_tokens and lifetime == 3600.0
    token, lifetime = wecom_fetch(wecom, http)
    assert token in wecom.tokens and lifetime == float(wecom.expires_in)


def test_a_wrong_secret_is_named_by_its_endpoint_not_retried_and_not_shown(
    feishu: FakeFeishu, wecom: FakeWeCom, http: httpx.Client
) -> None:
    wrong = "wrong-secret-0123456789"
    for fetch, said in (
        (lambda: feishu_fetch(feishu, http, wrong), f"{FEISHU_ENDPOINT}: code 10014 app secret invalid"),
        (lambda: wecom_fetch(wecom, http, wrong), f"{WECOM_ENDPOINT}: errcode 40001 invalid credential"),
    ):
        with pytest.raises(DeliveryError) as refused:
            fetch()
        assert str(refused.value).startswith(said) and not refused.value.retryable
        assert wrong not in str(refused.value)


FAILURES = [
    (
        "feishu",
        Answer(200, {"code": 99991400, "msg": "request trigger frequency limit"}),
        "code 99991400",
        True,
    ),
    ("feishu", Answer(502, "<html>bad gateway</html>"), f"{FEISHU_ENDPOINT}: HTTP 502", True),
    ("feishu", Answer(500, {"code": 1, "msg": "internal error"}), "code 1 internal error", True),
    ("feishu", Answer(200, {"code": 0, "msg": "ok"}), "the answer has no tenant_access_token", True),
    ("wecom", Answer(200, error(-1, "system busy")), "errcode -1 system busy", True),
    ("wecom", Answer(200, error(45009, "api freq out of limit")), "errcode 45009", True),
    ("wecom", Answer(200, "not json"), f"{WECOM_ENDPOINT}: the answer is not a JSON object", False),
    ("wecom", Answer(403, "forbidden"), f"{WECOM_ENDPOINT}: HTTP 403 forbidden", False),
]


@pytest.mark.parametrize(("platform", "answer", "said", "retryable"), FAILURES)
def test_failures_and_whether_they_are_retried(
    platform: str,
    answer: Answer,
    said: str,
    retryable: bool,
    feishu: FakeFeishu,
    wecom: FakeWeCom,
    http: httpx.Client,
) -> None:
    fake = feishu if platform == "feishu" else wecom
    fake.fail_next(answer)
    with pytest.raises(DeliveryError) as failed:
        feishu_fetch(feishu, http) if platform == "feishu" else wecom_fetch(wecom, http)
    assert said in str(failed.value) and failed.value.retryable is retryable
