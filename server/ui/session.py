"""The web UI's session cookie and CSRF tokens, signed with HMAC-SHA256 from the standard library.

A session is `sid.expires.auth.user.signature`: a random id, its expiry (Unix seconds, 8 h after it was
issued), whether it was signed in with the API's credentials (`1`) or is anonymous (`0`: it only binds
the CSRF tokens of a browser that has not signed in, or that authenticates with an Authorization
header, or of a UI without authentication), who signed in (the basic-auth user name, or `token` for the
bearer token; empty when anonymous) as unpadded URL-safe base64 of its UTF-8, and the HMAC of the rest.
A signed-in session names its user: a cookie of the earlier format (without the user), or a signed-in
one without a user, is no session, so its browser is signed out. The UI acts as "ui:<user>"
(server/ui/chatops.py). The key is random per process (`SESSION_KEY`): a restart signs everyone out,
and nothing secret is stored or configured for it.

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
MAX_USER = 200  # characters of a user name kept (as the API's actor: server/routes/actions.py)
MAX_COOKIE = 1400  # characters of a cookie read: a MAX_USER name of 4-byte characters fits
SESSION_KEY = secrets.token_bytes(32)  # per process: sessions end when the server restarts


def _sign(message: str, key: bytes = SESSION_KEY) -> str:
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _user_field(user: str) -> str:
    return base64.urlsafe_b64encode(user.encode()).rstrip(b"=").decode()


def _user_of(field: str) -> str | None:
    """The user name a cookie's field holds, or None when it is not our encoding of one."""
    try:
        user = base64.urlsafe_b64decode(field + "=" * (-len(field) % 4)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    return user if _user_field(user) == field else None


@dataclass(frozen=True)
class UISession:
    sid: str
    expires: int
    signed_in: bool
    user: str = ""  # who signed in: the basic-auth user, or "token"; "" when anonymous

    @classmethod
    def new(cls, signed_in: bool, now: float | None = None, *, user: str = "") -> UISession:
        """A new session; a signed-in one names its `user` (cut to MAX_USER characters): without one, its
        cookie is no session (`decode`)."""
        expires = int(now or time.time()) + LIFETIME_SECONDS
        return cls(secrets.token_urlsafe(16), expires, signed_in, user[:MAX_USER] if signed_in else "")

    def encode(self) -> str:
        body = f"{self.sid}.{self.expires}.{int(self.signed_in)}.{_user_field(self.user)}"
        return f"{body}.{_sign(body)}"

    @classmethod
    def decode(cls, value: str | None, now: float | None = None) -> UISession | None:
        """The session a cookie holds, or None: malformed, forged, expired, of the earlier format
        (no user), or signed in without a user."""
        if not value or len(value) > MAX_COOKIE:
            return None
        parts = value.split(".")
        if len(parts) != 5:
            return None
        sid, expires, signed_in, user_field, signature = parts
        body = f"{sid}.{expires}.{signed_in}.{user_field}"
        if not hmac.compare_digest(signature.encode(), _sign(body).encode()):
            return None
        if not expires.isdigit() or signed_in not in ("0", "1"):
            return None
        if int(expires) <= (now or time.time()):
            return None
        user = _user_of(user_field)
        if user is None or (signed_in == "1") != bool(user) or len(user) > MAX_USER:
            return None
        return cls(sid, int(expires), signed_in == "1", user)

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
