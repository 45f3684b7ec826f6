"""Email over SMTP (stdlib `smtplib`): the report as HTML, the brief as text, the report files attached.

One message per notice. Messages of one incident thread together in mail clients: the firing message
has a Message-ID derived from the incident's marker, and update/resolved messages point to it with
`In-Reply-To` and `References`. A retried notice gets the same Message-ID, so a duplicate from a retry
after a lost reply can be recognised.

Security: `starttls` (default, port 587), `tls` (implicit TLS, port 465) or `none` (port 25). Credentials
are only sent over TLS, except to a loopback host with `security: none` (a local relay).
"""

from __future__ import annotations

import html
import ipaddress
import re
import smtplib
import socket
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, make_msgid, parseaddr
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, Field, FilePath, ValidationInfo, field_validator, model_validator

from server.delivery.base import DeliveryError, Notice, Outcome, Sink, SinkConfig, TicketSlot
from server.delivery.message import brief
from server.delivery.secrets import Secret

Security = Literal["starttls", "tls", "none"]

DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "tls": 465, "none": 25}
SECURITY_LABEL: dict[str, str] = {"starttls": "STARTTLS", "tls": "TLS", "none": "no TLS"}

T = TypeVar("T")

# CRLF, and non-ASCII bodies as quoted-printable or base64: no reliance on the server's 8BITMIME
POLICY = SMTP.clone(cte_type="7bit")


def _address(value: str) -> str:
    """`value` if it is one email address (optionally with a display name), else ValueError."""
    if "\r" in value or "\n" in value:
        raise ValueError("an address may not contain a line break")
    _, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or " " in addr:
        raise ValueError(f"not an email address: {value!r}")
    return value.strip()


Address = Annotated[str, AfterValidator(_address)]


def _is_loopback(host: str) -> bool:
    if host.lower() in {"localhost", "localhost.localdomain"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class EmailConfig(SinkConfig):
    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=587, ge=1, le=65535)  # default by security: starttls 587, tls 465, none 25
    security: Security = "starttls"
    username: str | None = None
    password: Secret | None = Field(default=None, validate_default=True)
    from_addr: Address
    to: list[Address] = Field(min_length=1)
    cc: list[Address] = Field(default_factory=list)
    subject_prefix: str = "[alertsleuth]"
    verify_tls: bool = True
    ca_file: FilePath | None = None  # PEM of a private CA; replaces the system trust store

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            security = data.get("security", "starttls")
            data = {**data, "port": DEFAULT_PORTS.get(str(security), 587)}
        return data

    @field_validator("subject_prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if "\r" in value or "\n" in value:
            raise ValueError("the subject prefix may not contain a line break")
        return value

    @field_validator("username")
    @classmethod
    def _check_username(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        host = str(info.data.get("host", ""))
        if info.data.get("security") == "none" and not _is_loopback(host):
            raise ValueError(
                "refusing to send credentials over an unencrypted connection to a non-loopback host; "
                "use security: starttls (port 587) or tls (port 465)"
            )
        return value

    @field_validator("password")
    @classmethod
    def _check_password(cls, value: Any, info: ValidationInfo) -> Any:
        if "username" not in info.data:  # already reported
            return value
        has_user = bool(info.data["username"])
        if value is not None and not has_user:
            raise ValueError("a password needs a username")
        if value is None and has_user:
            raise ValueError("username is set but password is missing")
        return value


def _kb(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 10 * 1024:
        return f"{n / 1024:.1f} kB"
    if n < 1024 * 1024:
        return f"{round(n / 1024)} kB"
    return f"{n / 1024 / 1024:.1f} MB"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _id_part(text: str) -> str:
    """A Message-ID-safe token (dot-atom characters only)."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text).strip("-") or "x"


def _reply_text(resp: bytes | str) -> str:
    text = resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)
    return _one_line(text)[:300]


_SVG = re.compile(r"<svg\b.*?</svg>", re.S)


def inline_charts(page: str, names: list[str], cids: list[str]) -> str:
    """The report page for mail: each inline SVG chart, in order, replaced by its PNG part (`cid:`), and
    the page's Content-Security-Policy letting those load."""
    parts = iter(zip(names, cids, strict=True))

    def swap(match: re.Match[str]) -> str:
        found = next(parts, None)
        if found is None:
            return match.group(0)
        name, cid = found
        return f'<img src="cid:{cid}" alt="{html.escape(name)}" style="max-width:100%;height:auto">'

    page = _SVG.sub(swap, page)
    return page.replace("img-src data:", "img-src data: cid:", 1) if cids else page


class EmailSink(Sink):
    kind = "email"
    config_model = EmailConfig
    tickets = False
    config: EmailConfig

    # ---- the message ----------------------------------------------------------------------------

    @property
    def _domain(self) -> str:
        return parseaddr(self.config.from_addr)[1].rpartition("@")[2] or "alertsleuth.invalid"

    def message_id(self, marker: str, event: str, report_id: str | None = None) -> str:
        """`<alertsleuth.MARKER.firing@domain>` for firing (what later messages refer to); other
        events add the report id so each update is its own message, stable across retries."""
        parts = ["alertsleuth", _id_part(marker), event]
        if event != "firing":
            parts.append(_id_part(report_id) if report_id else "noreport")
        return f"<{'.'.join(parts)}@{self._domain}>"

    def _subject(self, text: str) -> str:
        prefix = self.config.subject_prefix.strip()
        return _one_line(f"{prefix} {text}" if prefix else text)

    def _envelope(self, msg: EmailMessage) -> None:
        msg["From"] = self.config.from_addr
        msg["To"] = ", ".join(self.config.to)
        if self.config.cc:
            msg["Cc"] = ", ".join(self.config.cc)
        msg["Date"] = formatdate(usegmt=True)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation auto-replies

    def build(self, notice: Notice) -> EmailMessage:
        """The message for one notice (not for `test`)."""
        msg = EmailMessage(policy=POLICY)
        msg["Subject"] = self._subject(notice.title)
        self._envelope(msg)
        msg["Message-ID"] = self.message_id(notice.marker, notice.event, notice.report_id)
        if notice.event in ("update", "resolved"):
            first = self.message_id(notice.marker, "firing")
            msg["In-Reply-To"] = first
            msg["References"] = first
        msg["X-Alertsleuth-Incident"] = str(notice.incident_id)
        msg["X-Alertsleuth-Event"] = notice.event

        name = f"report-{_id_part(notice.report_id or f'incident-{notice.incident_id}')}"
        files = []
        if notice.report_json:
            files.append(f"{name}.json")
        if notice.markdown:
            files.append(f"{name}.md")
        text = brief(notice, style="text")
        if files:
            text += "\n\nAttached: " + ", ".join(files)
        msg.set_content(text + "\n", subtype="plain", charset="utf-8")
        charts = notice.charts() if notice.html else []
        cids = [make_msgid(domain="alertsleuth.invalid")[1:-1] for _ in charts]
        body = inline_charts(notice.html, [name for name, _ in charts], cids) if notice.html else None
        msg.add_alternative(body or self._simple_html(notice, text), subtype="html", charset="utf-8")
        if charts:  # the charts as PNG parts of the HTML (mail readers do not all show inline SVG)
            html_part = msg.get_body(("html",))
            assert isinstance(html_part, EmailMessage)
            for (name, data), cid in zip(charts, cids, strict=True):
                html_part.add_related(data, maintype="image", subtype="png", cid=f"<{cid}>", filename=name)
        if notice.report_json:
            msg.add_attachment(
                notice.report_json.encode("utf-8"),
                maintype="application",
                subtype="json",
                filename=f"{name}.json",
            )
        if notice.markdown:
            msg.add_attachment(notice.markdown, subtype="markdown", charset="utf-8", filename=f"{name}.md")
        return msg

    @staticmethod
    def _simple_html(notice: Notice, text: str) -> str:
        link = ""
        if notice.report_url:
            url = html.escape(notice.report_url, quote=True)
            link = f'<p><a href="{url}">Full report</a></p>\n'
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head><body>\n'
            f'<pre style="white-space: pre-wrap; font-family: sans-serif">{html.escape(text)}</pre>\n'
            f"{link}</body></html>\n"
        )

    def build_test(self) -> EmailMessage:
        msg = EmailMessage(policy=POLICY)
        msg["Subject"] = self._subject(f"test message from sink {self.name}")
        self._envelope(msg)
        msg["Message-ID"] = make_msgid(idstring="alertsleuth.test", domain=self._domain)
        msg["X-Alertsleuth-Event"] = "test"
        msg.set_content(
            f"alertsleuth test message from sink {self.name}\n\n"
            "If you can read this, alertsleuth can deliver reports to this address.\n",
            charset="utf-8",
        )
        return msg

    # ---- sending --------------------------------------------------------------------------------

    def send(self, notice: Notice, ticket: TicketSlot) -> Outcome:
        msg = self.build_test() if notice.event == "test" else self.build(notice)
        raw = msg.as_bytes()
        rcpts = [parseaddr(a)[1] for a in [*self.config.to, *self.config.cc]]
        via = f"{self.config.host}:{self.config.port} ({SECURITY_LABEL[self.config.security]})"
        self._session(lambda smtp: self._deliver(smtp, raw, rcpts), size=len(raw))
        if notice.event == "test":
            return Outcome(detail=f"test message sent to {', '.join(rcpts)} via {via}")
        count = f"{len(rcpts)} recipient{'s' if len(rcpts) != 1 else ''}"
        return Outcome(detail=f"sent to {count} via {via}, {_kb(len(raw))}")

    def _deliver(self, smtp: smtplib.SMTP, raw: bytes, rcpts: list[str]) -> None:
        sender = parseaddr(self.config.from_addr)[1]
        refused = smtp.sendmail(sender, rcpts, raw)
        if refused:  # delivered to the others: a retry would send them a duplicate
            raise DeliveryError(
                f"{self._what}: sent to {len(rcpts) - len(refused)} of {len(rcpts)} recipients; "
                f"refused {self._refusals(refused)}",
                retryable=False,
            )

    @property
    def _what(self) -> str:
        return f"SMTP {self.config.host}:{self.config.port}"

    def _tls_context(self) -> ssl.SSLContext:
        cafile = str(self.config.ca_file) if self.config.ca_file else None
        ctx = ssl.create_default_context(cafile=cafile)
        if not self.config.verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def _connect(self) -> smtplib.SMTP:
        cfg = self.config
        if cfg.security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                cfg.host, cfg.port, timeout=cfg.timeout, context=self._tls_context()
            )
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        try:
            smtp.ehlo()
            if cfg.security == "starttls":
                code, reply = smtp.starttls(context=self._tls_context())
                if code != 220:
                    raise smtplib.SMTPResponseException(code, reply)
                smtp.ehlo()
            if cfg.username and cfg.password is not None:
                smtp.login(cfg.username, cfg.password.get_secret_value())
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _session(self, work: Callable[[smtplib.SMTP], T], *, size: int) -> T:
        """Connect, secure, log in, run `work`, quit; every failure becomes a DeliveryError."""
        try:
            smtp = self._connect()
            try:
                result = work(smtp)
            except BaseException:
                smtp.close()
                raise
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()
            return result
        except DeliveryError as exc:
            raise DeliveryError(self._scrub(str(exc)), retryable=exc.retryable) from None
        except Exception as exc:
            error = self._error(exc, size)
            raise DeliveryError(self._scrub(str(error)), retryable=error.retryable) from None

    def _scrub(self, text: str) -> str:
        secret = self.config.password.get_secret_value() if self.config.password else ""
        return text.replace(secret, "***") if secret else text

    @staticmethod
    def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
        return ", ".join(f"{addr} ({code} {_reply_text(resp)})" for addr, (code, resp) in refused.items())

    def _error(self, exc: Exception, size: int) -> DeliveryError:
        """Map an smtplib/ssl/socket failure: 4xx, network trouble and timeouts are retryable; 5xx,
        refused credentials, TLS trust and protocol mismatches are not (retrying would not help)."""
        what, cfg = self._what, self.config
        sec = cfg.security
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            return DeliveryError(
                f"{what}: authentication failed for user {cfg.username!r} "
                f"({exc.smtp_code} {_reply_text(exc.smtp_error)})",
                retryable=400 <= exc.smtp_code < 500,  # 454: temporary authentication failure
            )
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _ in exc.recipients.values()]
            return DeliveryError(
                f"{what}: recipients refused: {self._refusals(exc.recipients)}",
                retryable=bool(codes) and all(400 <= c < 500 for c in codes),  # e.g. greylisting
            )
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            hint = ""
            if "AUTH" in str(exc):
                hint = f" (the server offers no AUTH on this connection; security is {sec})"
            elif "STARTTLS" in str(exc):
                hint = " (use security: tls for implicit TLS, usually port 465, or security: none)"
            return DeliveryError(f"{what}: {exc}{hint}", retryable=False)
        if isinstance(exc, smtplib.SMTPServerDisconnected) and isinstance(exc.__context__, TimeoutError):
            exc = exc.__context__  # smtplib reports a read timeout as a disconnect
        elif isinstance(exc, smtplib.SMTPServerDisconnected):
            return DeliveryError(f"{what}: server disconnected ({exc or 'no reason given'})")
        if isinstance(exc, smtplib.SMTPResponseException):
            code, reply = exc.smtp_code, _reply_text(exc.smtp_error)
            stage = {
                smtplib.SMTPSenderRefused: f"sender {parseaddr(cfg.from_addr)[1]} refused",
                smtplib.SMTPDataError: f"message ({_kb(size)}) refused",
                smtplib.SMTPConnectError: "greeting refused",
                smtplib.SMTPHeloError: "EHLO refused",
            }.get(type(exc), "command refused")
            hint = " (message too large for the server?)" if code == 552 else ""
            return DeliveryError(f"{what}: {stage}: {code} {reply}{hint}", retryable=not 500 <= code < 600)
        if isinstance(exc, smtplib.SMTPException):
            return DeliveryError(f"{what}: {type(exc).__name__}: {exc}")
        if isinstance(exc, ssl.SSLCertVerificationError):
            return DeliveryError(
                f"{what}: TLS certificate not trusted ({exc.verify_message}); for a private CA set "
                "ca_file to its PEM file, or verify_tls: false to skip verification",
                retryable=False,
            )
        if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | ssl.SSLSyscallError):
            return DeliveryError(f"{what}: TLS connection closed during the handshake ({exc.reason})")
        if isinstance(exc, ssl.SSLError):
            return DeliveryError(
                f"{what}: TLS failed ({exc.reason or exc}); check that security ({sec}) matches the "
                "port: implicit TLS (security: tls) is usually 465, STARTTLS (security: starttls) 587",
                retryable=False,
            )
        if isinstance(exc, TimeoutError):
            hint = ""
            if sec != "tls" and cfg.port == 465:
                hint = "; port 465 usually expects implicit TLS (security: tls)"
            return DeliveryError(f"{what}: timed out after {cfg.timeout:g}s{hint}")
        if isinstance(exc, ConnectionRefusedError):
            return DeliveryError(f"{what}: connection refused")
        if isinstance(exc, socket.gaierror):
            return DeliveryError(f"{what}: cannot resolve host ({exc.strerror})")
        if isinstance(exc, OSError):
            return DeliveryError(f"{what}: {type(exc).__name__}: {exc.strerror or exc}")
        return DeliveryError(f"{what}: {type(exc).__name__}: {exc}", retryable=False)  # a bug, not load
