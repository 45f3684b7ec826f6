"""Access tokens that platforms hand out for a while (Feishu's tenant_access_token, WeCom's access_token):
the one fetch of each, and one cache per client, shared by its threads. Used by the sinks that post with
them (server/delivery/sinks/feishu.py, wecom.py) and by ChatOps' replies (server/chatops/platforms/).

- Feishu / Lark (https://open.feishu.cn/document/server-docs/authentication-management/access-token/
  tenant_access_token_internal): POST /open-apis/auth/v3/tenant_access_token/internal with {"app_id",
  "app_secret"} answers {"code": 0, "msg": "ok", "tenant_access_token": "t-...", "expire": <seconds
  left>}; errors such as 10014 (app secret invalid) come with HTTP 400, 99991400 is the frequency limit.
- WeCom (https://developer.work.weixin.qq.com/document/path/91039): GET /cgi-bin/gettoken?corpid&corpsecret
  answers {"errcode": 0, "access_token", "expires_in": 7200}; 40001 / 40013 / 40091 mean a wrong corp id
  or secret, -1 (busy) and 45009 (frequency limit) are worth retrying.

A fetch answers (token, seconds it lives) or a DeliveryError naming the endpoint as documented above
(never the URL: its query holds the secret), scrubbed of the secret: retryable for a timeout, a transport
failure, HTTP 408/425/429/5xx and the codes above worth retrying, not otherwise (wrong credentials).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from server.delivery.base import DeliveryError
from server.delivery.chat import JSON_HEADERS, encode_json, redact
from server.delivery.http import RETRYABLE, answer_json, send

FEISHU_TOKEN_PATH = "/auth/v3/tenant_access_token/internal"  # below the Open Platform's /open-apis
FEISHU_RETRYABLE = {99991400}
WECOM_TOKEN_PATH = "/gettoken"  # below /cgi-bin
WECOM_RETRYABLE = {-1, 45009}
LIFETIME = 7200.0  # seconds a token lives when the answer does not say


def feishu_tenant_token(
    http: httpx.Client, open_apis: str, app_id: str, app_secret: str, timeout: float
) -> tuple[str, float]:
    """A tenant_access_token of the app, from `open_apis` (the Open Platform's API root,
    https://open.feishu.cn/open-apis or https://open.larksuite.com/open-apis)."""
    what = f"POST /open-apis{FEISHU_TOKEN_PATH}"
    resp = send(
        http,
        "POST",
        open_apis + FEISHU_TOKEN_PATH,
        what=what,
        content=encode_json({"app_id": app_id, "app_secret": app_secret}),
        headers=JSON_HEADERS,
        timeout=timeout,
    )
    payload = answer_json(resp, what, app_secret)
    code = payload.get("code", 0)
    if code != 0:
        message, busy = payload.get("msg"), code in FEISHU_RETRYABLE
        raise _refused(resp, f"{what}: code {code}", message, busy, app_secret)
    return _token(payload, "tenant_access_token", "expire", what)


def wecom_access_token(
    http: httpx.Client, cgi_bin: str, corp_id: str, corp_secret: str, timeout: float
) -> tuple[str, float]:
    """An access_token of the application, from `cgi_bin` (https://qyapi.weixin.qq.com/cgi-bin)."""
    what = f"GET /cgi-bin{WECOM_TOKEN_PATH}"
    resp = send(
        http,
        "GET",
        cgi_bin + WECOM_TOKEN_PATH,
        what=what,
        params={"corpid": corp_id, "corpsecret": corp_secret},
        timeout=timeout,
    )
    payload = answer_json(resp, what, corp_secret)
    code = payload.get("errcode", 0)
    if code not in (0, None):
        message, busy = payload.get("errmsg"), code in WECOM_RETRYABLE
        raise _refused(resp, f"{what}: errcode {code}", message, busy, corp_secret)
    return _token(payload, "access_token", "expires_in", what)


def _refused(resp: httpx.Response, head: str, message: Any, busy: bool, secret: str) -> DeliveryError:
    """The DeliveryError for an answer whose code is not 0: `head` ("POST /path: code 10014"), then the
    platform's message, the secret scrubbed; retryable when `busy` or for the HTTP status."""
    text = redact(f"{head} {str(message or '')[:300]}".rstrip(), secret)
    return DeliveryError(text, retryable=busy or resp.status_code in RETRYABLE)


def _token(payload: dict[str, Any], key: str, lifetime: str, what: str) -> tuple[str, float]:
    token = payload.get(key)
    if not isinstance(token, str) or not token:
        raise DeliveryError(f"{what}: the answer has no {key}")
    try:
        return token, float(payload.get(lifetime) or LIFETIME)
    except (TypeError, ValueError):
        return token, LIFETIME


class TokenCache:
    """One access token shared by threads: fetched when there is none or it is within `margin` seconds
    of expiring, one fetch at a time; `forget` drops a token the platform refused."""

    def __init__(self, margin: float = 300.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._margin = margin
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def get(self, fetch: Callable[[], tuple[str, float]]) -> str:
        """The cached token, or the one `fetch` returns as (token, seconds it lives)."""
        with self._lock:
            if self._token is not None and self._clock() < self._until:
                return self._token
            token, lifetime = fetch()
            usable = lifetime - self._margin if lifetime > 2 * self._margin else lifetime / 2
            self._token, self._until = token, self._clock() + usable
            return token

    def forget(self, token: str) -> None:
        with self._lock:
            if self._token == token:  # another thread may already hold a newer one
                self._token = None
