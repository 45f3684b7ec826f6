"""The web UI's session cookie and CSRF tokens, signed with HMAC-SHA256 from the standard library.

A session is `sid.expires.auth.signature`: a random id, its expiry (Unix seconds, 8 h after it was
issued), whether it was signed in with the API's credentials (`1`) or is anonymous (`0`: it only binds
the CSRF tokens of a browser that has not signed in, or that authenticates with an Authorization
header, or of a UI without authentication), and the HMAC of the rest. The key is random per process
(`SESSION_KEY`): a restart signs everyone out, and nothing secret is stored or configured for it.

A form's CSRF token is the HMAC of `csrf:` and the session id, so it is valid only with the cookie it
was issued for; every POST of the UI (sign-in included, with the anonymous session `GET /ui/login`
issues) must carry it.

The cookie is HttpOnly, SameSite=Strict, Path=/ui, expires with the session, and Secure when the
request came over HTTPS (directly or, per `X-Forwarded-Proto`, through a proxy).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "alertsleuth_session"
COOKIE_PATH = "/ui"
LIFETIME_SECONDS = 8 * 3600
SESSION_KEY = secrets.token_bytes(32)  # per process: sessions end when the server restarts


def _sign(message: str, key: bytes = SESSION_KEY) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True)
class UISession:
    sid: str
    expires: int
    signed_in: bool

    @classmethod
    def new(cls, signed_in: bool, now: float | None = None) -> UISession:
        return cls(secrets.token_urlsafe(16), int(now or time.time()) + LIFETIME_SECONDS, signed_in)

    def encode(self) -> str:
        body = f"{self.sid}.{self.expires}.{int(self.signed_in)}"
        return f"{body}.{_sign(body)}"

    @classmethod
    def decode(cls, value: str | None, now: float | None = None) -> UISession | None:
        """The session a cookie holds, or None: malformed, forged or expired."""
        if not value or len(value) > 200:
            return None
        parts = value.split(".")
        if len(parts) != 4:
            return None
        sid, expires, signed_in, signature = parts
        if not hmac.compare_digest(signature.encode(), _sign(f"{sid}.{expires}.{signed_in}").encode()):
            return None
        if not expires.isdigit() or signed_in not in ("0", "1"):
            return None
        if int(expires) <= (now or time.time()):
            return None
        return cls(sid, int(expires), signed_in == "1")

    def csrf_token(self) -> str:
        return _sign(f"csrf:{self.sid}")

    def csrf_ok(self, token: str | None) -> bool:
        # as bytes: compare_digest refuses str with non-ASCII characters (a hostile form field)
        return bool(token) and hmac.compare_digest(str(token).encode(), self.csrf_token().encode())


def read_session(request: Request) -> UISession | None:
    return UISession.decode(request.cookies.get(COOKIE))


def _secure(request: Request) -> bool:
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    return proto.split(",")[0].strip().lower() == "https"


def set_session(response: Response, request: Request, session: UISession) -> None:
    response.set_cookie(
        COOKIE,
        session.encode(),
        max_age=max(0, session.expires - int(time.time())),
        path=COOKIE_PATH,
        secure=_secure(request),
        httponly=True,
        samesite="strict",
    )


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        COOKIE, path=COOKIE_PATH, secure=_secure(request), httponly=True, samesite="strict"
    )
