"""A real SMTP server on loopback (aiosmtpd in a thread) with TLS from a throwaway CA (trustme) and AUTH.

    with FakeSMTP() as smtp:                        # STARTTLS required, AUTH PLAIN/LOGIN only over TLS
        config = EmailConfig.model_validate(smtp.sink_config(to=["ops@example.com"]))
        EmailSink("mail", config, None).send(notice, slot)
        [received] = smtp.messages
        assert received.tls_at_auth and received.login == smtp.username
        assert received.message["Subject"].startswith("[alertsleuth]")

    FakeSMTP(security="tls")    # implicit TLS from the first byte (the port-465 style)
    FakeSMTP(security="none")   # plain SMTP; with auth=True, AUTH is offered without TLS (loopback relay)

`ca_file` is the CA's PEM (give it to the client as its trust store); the certificate is valid for
127.0.0.1 and localhost. Failures can be queued: `fail_next("451 4.3.0 try again later")` answers the next
DATA with that reply instead of accepting the message; `refuse("x@example.com")` answers RCPT for that
address with 550. Every accepted message is recorded in `messages`, every AUTH attempt in `auth_attempts`.
"""

from __future__ import annotations

import asyncio
import email.policy
import shutil
import ssl
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

__all__ = ["AuthAttempt", "FakeSMTP", "Received"]

Security = Literal["starttls", "tls", "none"]


@dataclass(frozen=True)
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage  # parsed with email.policy.default, line ends as \n
    raw: bytes  # as received (CRLF)
    tls: bool  # the session was encrypted when DATA arrived (STARTTLS or implicit TLS)
    authenticated: bool
    login: str | None  # the user that logged in, if any
    tls_at_auth: bool | None  # the session was already encrypted when AUTH succeeded (None: no AUTH)

    def header(self, name: str) -> str | None:
        """A header's value unfolded and stripped (a long Message-ID is folded onto its own line)."""
        value = self.message[name]
        return None if value is None else " ".join(str(value).split())

    def part(self, content_type: str) -> EmailMessage | None:
        """The first non-attachment part of that type (e.g. "text/plain", "text/html")."""
        for part in self.message.walk():
            if part.get_content_type() == content_type and not part.is_attachment():
                return part
        return None

    def text(self, content_type: str = "text/plain") -> str:
        part = self.part(content_type)
        if part is None:
            raise KeyError(f"no {content_type} part")
        return str(part.get_content())

    def attachments(self) -> dict[str, EmailMessage]:
        """Attachments by file name."""
        return {str(part.get_filename()): part for part in self.message.iter_attachments()}


@dataclass(frozen=True)
class AuthAttempt:
    mechanism: str
    login: str
    success: bool
    tls: bool


def _tls_now(server: SMTP) -> bool:
    transport = server.transport
    return transport is not None and transport.get_extra_info("ssl_object") is not None


class _Controller(Controller):
    """Binds port 0 and learns the port the OS chose (before `start` opens its test connection)."""

    def _create_server(self) -> Any:
        async def bind() -> asyncio.AbstractServer:
            server = await self.loop.create_server(
                self._factory_invoker, host=self.hostname, port=0, ssl=self.ssl_context
            )
            self.port = server.sockets[0].getsockname()[1]
            return server

        return bind()


class _Handler:
    def __init__(self, fake: FakeSMTP) -> None:
        self.fake = fake

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        # AUTH is required here rather than with aiosmtpd's auth_required, which warns when the TLS
        # is implicit (it only counts STARTTLS as TLS)
        if self.fake.auth and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        with self.fake._lock:
            reply = self.fake._refused.get(address.lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.fake._lock:
            self.fake.data_attempts += 1
            if self.fake._failures:
                return self.fake._failures.popleft()
        raw = envelope.original_content or b""
        if not raw and isinstance(envelope.content, bytes):
            raw = envelope.content
        # parsed as a mail client stores it: CRLF line ends become \n (`raw` keeps the wire form)
        message = BytesParser(policy=email.policy.default).parsebytes(raw.replace(b"\r\n", b"\n"))
        auth_data = session.auth_data
        received = Received(
            mail_from=str(envelope.mail_from),
            rcpt_tos=list(envelope.rcpt_tos),
            message=message,
            raw=raw,
            tls=_tls_now(server),
            authenticated=bool(session.authenticated),
            login=auth_data.login.decode() if isinstance(auth_data, LoginPassword) else None,
            tls_at_auth=getattr(session, "fake_tls_at_auth", None),
        )
        with self.fake._lock:
            self.fake.messages.append(received)
        return "250 2.0.0 OK queued"


class FakeSMTP:
    """See the module docstring. Use as a context manager, or `start()`/`stop()`."""

    def __init__(
        self,
        *,
        security: Security = "starttls",
        auth: bool = True,
        username: str = "alertsleuth",
        password: str = "s3cret-Pa55word",
        hostname: str = "127.0.0.1",
    ) -> None:
        self.security = security
        self.auth = auth
        self.username = username
        self.password = password
        self.host = hostname
        self.messages: list[Received] = []
        self.auth_attempts: list[AuthAttempt] = []
        self.data_attempts = 0  # DATA commands seen, accepted or failed
        self._failures: deque[str] = deque()
        self._refused: dict[str, str] = {}
        self._lock = threading.Lock()
        self._dir = Path(tempfile.mkdtemp(prefix="fake-smtp-"))
        self.ca = trustme.CA()
        self.ca_file = self._dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._controller: _Controller | None = None

    # ---- control ---------------------------------------------------------------------------------

    def fail_next(self, reply: str = "451 4.3.0 try again later", *, times: int = 1) -> None:
        """Answer the next `times` DATA commands with `reply` (e.g. "550 5.7.1 rejected by policy")."""
        with self._lock:
            self._failures.extend([reply] * times)

    def refuse(self, address: str, reply: str = "550 5.1.1 no such user") -> None:
        """Answer RCPT TO for `address` with `reply` from now on."""
        with self._lock:
            self._refused[address.lower()] = reply

    def sink_config(self, **overrides: Any) -> dict[str, Any]:
        """EmailConfig settings that reach this server and trust its CA; `overrides` replace keys
        (pass `ca_file=None` to drop the CA, `username=None` and `password=None` to skip AUTH)."""
        config: dict[str, Any] = {
            "type": "email",
            "host": self.host,
            "port": self.port,
            "security": self.security,
            "from_addr": "alertsleuth <alertsleuth@example.com>",
            "to": ["oncall@example.com"],
            "timeout": 5.0,
        }
        if self.security != "none":
            config["ca_file"] = str(self.ca_file)
        if self.auth:
            config["username"] = self.username
            config["password"] = self.password
        config.update(overrides)
        return {k: v for k, v in config.items() if v is not None}

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Received]:
        """The received messages once there are at least `count` (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages, received {len(self.messages)}")
            time.sleep(0.02)

    def clear(self) -> None:
        with self._lock:
            self.messages.clear()
            self.auth_attempts.clear()
            self._failures.clear()
            self._refused.clear()
            self.data_attempts = 0

    # ---- the server ------------------------------------------------------------------------------

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        tls = _tls_now(server)
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == self.username
            and data.password.decode() == self.password
        )
        login = data.login.decode(errors="replace") if isinstance(data, LoginPassword) else ""
        with self._lock:
            self.auth_attempts.append(AuthAttempt(mechanism=mechanism, login=login, success=ok, tls=tls))
        if ok:
            session.fake_tls_at_auth = tls  # type: ignore[attr-defined]
            return AuthResult(success=True, auth_data=data)
        return AuthResult(success=False, handled=False)

    @property
    def port(self) -> int:
        if self._controller is None:
            raise RuntimeError("FakeSMTP is not running")
        return int(self._controller.port)

    def start(self) -> FakeSMTP:
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        kwargs: dict[str, Any] = {}
        context: ssl.SSLContext | None = None
        if self.security != "none":
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            cert.configure_cert(context)
        if self.security == "starttls":
            kwargs.update(tls_context=context, require_starttls=True, auth_require_tls=True)
        else:  # aiosmtpd only counts STARTTLS as TLS for AUTH; with implicit TLS all of it is
            kwargs.update(auth_require_tls=False)
        if self.auth:
            kwargs.update(authenticator=self._authenticate)
        self._controller = _Controller(
            _Handler(self),
            hostname=self.host,
            port=0,
            ssl_context=context if self.security == "tls" else None,
            server_hostname="fake-smtp.test",
            **kwargs,
        )
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> FakeSMTP:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
