"""The email sink against a real SMTP server on loopback (aiosmtpd): STARTTLS or implicit TLS with a
throwaway CA, AUTH, and the server's temporary and permanent refusals."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from server.delivery.base import DeliveryError, Notice, NoticeCause, TicketSlot
from server.delivery.sinks.email import EmailConfig, EmailSink
from tests.fakes.smtp import FakeSMTP

MARKER = "alertsleuth-3f9a1c2b7d4e-1763700000"
HTML = "<!DOCTYPE html><html><body><h1>Root-cause report</h1><p>shanghai admins</p></body></html>"
REPORT = {"id": "r-42", "summary": "Login failures rose to 38%."}


def notice(event: str = "firing", **changes: Any) -> Notice:
    base = Notice(
        event=event,  # type: ignore[arg-type]
        incident_id=42,
        marker=MARKER,
        alertname="LoginFailureRatio",
        status="resolved" if event == "resolved" else "firing",
        severity="critical",
        labels={"alertname": "LoginFailureRatio", "ip_region": "上海"},
        title=f"[{'RESOLVED' if event == 'resolved' else 'FIRING'}] LoginFailureRatio: ip_region=上海",
        summary="Login failures rose to 38%, concentrated in ip_region=上海 and user_type=admin.",
        root_causes=[NoticeCause({"ip_region": "上海", "user_type": "admin"}, "92% of the failures", 0.92)],
        localized=True,
        starts_at="2025-11-21T10:00:00Z",
        report_id="r-42",
        markdown="# Root-cause report\n\nshanghai admins\n",
        html=HTML,
        report_json=json.dumps(REPORT),
        report_url="https://alertsleuth.example.com/reports/r-42",
    )
    return replace(base, **changes)


def slot() -> TicketSlot:
    return TicketSlot(None, lambda ref: None)


def sink(server: FakeSMTP, **overrides: Any) -> EmailSink:
    return EmailSink("mail", EmailConfig.model_validate(server.sink_config(**overrides)), None)


def failure(server: FakeSMTP, n: Notice | None = None, **overrides: Any) -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        sink(server, **overrides).send(n or notice(), slot())
    return info.value


@pytest.fixture
def smtp() -> Iterator[FakeSMTP]:
    with FakeSMTP() as server:
        yield server


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# ---- what arrives --------------------------------------------------------------------------------


def test_firing_sends_the_html_report_with_the_files_attached(smtp: FakeSMTP) -> None:
    out = sink(smtp, to=["oncall@example.com", "Ops <ops@example.com>"], cc=["lead@example.com"]).send(
        notice(), slot()
    )

    [got] = smtp.messages
    assert sorted(got.rcpt_tos) == ["lead@example.com", "oncall@example.com", "ops@example.com"]
    assert got.mail_from == "alertsleuth@example.com"
    msg = got.message
    assert msg["Subject"] == "[alertsleuth] [FIRING] LoginFailureRatio: ip_region=上海"
    assert msg["To"] == "oncall@example.com, Ops <ops@example.com>"
    assert msg["Cc"] == "lead@example.com"
    assert got.header("Message-ID") == f"<alertsleuth.{MARKER}.firing@example.com>"
    assert got.header("In-Reply-To") is None and got.header("References") is None
    assert msg["X-Alertsleuth-Incident"] == "42"
    assert msg["Date"] is not None
    assert msg.get_content_type() == "multipart/mixed"
    assert got.part("text/html") is not None and got.text("text/html").strip() == HTML

    text = got.text("text/plain")
    assert "Login failures rose to 38%, concentrated in ip_region=上海" in text
    assert "ip_region=上海, user_type=admin: 92% of the failures" in text
    assert "https://alertsleuth.example.com/reports/r-42" in text

    files = got.attachments()
    assert set(files) == {"report-r-42.json", "report-r-42.md"}
    assert files["report-r-42.json"].get_content_type() == "application/json"
    assert json.loads(files["report-r-42.json"].get_content()) == REPORT
    assert files["report-r-42.md"].get_content_type() == "text/markdown"
    assert files["report-r-42.md"].get_content() == "# Root-cause report\n\nshanghai admins\n"

    assert out.detail.startswith(f"sent to 3 recipients via 127.0.0.1:{smtp.port} (STARTTLS), ")
    assert out.detail.endswith(" kB") and out.ticket is None


def test_without_a_report_the_html_part_is_the_brief_escaped(smtp: FakeSMTP) -> None:
    n = notice(
        html=None,
        markdown=None,
        report_json=None,
        report_id=None,
        title="[FIRING] Odd: path=<script>alert(1)</script>",
        summary="No report yet.",
    )
    sink(smtp).send(n, slot())

    [got] = smtp.messages
    html = got.text("text/html")
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert '<a href="https://alertsleuth.example.com/reports/r-42">' in html
    assert got.attachments() == {}
    assert got.header("Message-ID") == f"<alertsleuth.{MARKER}.firing@example.com>"


def test_resolved_and_update_thread_under_the_firing_message(smtp: FakeSMTP) -> None:
    mail = sink(smtp)
    mail.send(notice(), slot())
    mail.send(notice("update", report_id="r-43", change="a second region is affected"), slot())
    mail.send(notice("resolved", ends_at="2025-11-21T11:02:05Z", duration_seconds=3725), slot())

    firing, update, resolved = smtp.wait_for(3)
    first = firing.header("Message-ID")
    assert update.header("Message-ID") == f"<alertsleuth.{MARKER}.update.r-43@example.com>"
    assert resolved.header("Message-ID") == f"<alertsleuth.{MARKER}.resolved.r-42@example.com>"
    for later in (update, resolved):
        assert later.header("In-Reply-To") == first
        assert later.header("References") == first
    assert "Changed: a second region is affected" in update.text()
    text = resolved.text()
    assert "Resolved at 2025-11-21T11:02:05Z, lasted 1h 02m." in text
    assert resolved.message["Subject"].startswith("[alertsleuth] [RESOLVED] LoginFailureRatio")


def test_a_retried_notice_keeps_its_message_id(smtp: FakeSMTP) -> None:
    mail = sink(smtp)
    mail.send(notice("update", report_id="r-43"), slot())
    mail.send(notice("update", report_id="r-43"), slot())
    one, two = smtp.wait_for(2)
    assert one.header("Message-ID") == two.header("Message-ID")


def test_test_event_sends_a_short_message_and_says_to_whom(smtp: FakeSMTP) -> None:
    out = sink(smtp, to=["a@example.com", "b@example.com"]).send(notice("test"), slot())

    [got] = smtp.messages
    assert got.text().startswith("alertsleuth test message from sink mail")
    assert got.message["Subject"] == "[alertsleuth] test message from sink mail"
    assert got.attachments() == {}
    assert got.authenticated and got.tls
    assert (
        out.detail
        == f"test message sent to a@example.com, b@example.com via 127.0.0.1:{smtp.port} (STARTTLS)"
    )


# ---- transport security and AUTH -----------------------------------------------------------------


def test_starttls_comes_before_auth(smtp: FakeSMTP) -> None:
    sink(smtp).send(notice(), slot())

    [got] = smtp.messages
    assert got.tls and got.authenticated and got.login == smtp.username
    assert got.tls_at_auth is True
    assert [(a.login, a.success, a.tls) for a in smtp.auth_attempts] == [(smtp.username, True, True)]


def test_implicit_tls() -> None:
    with FakeSMTP(security="tls") as server:
        out = sink(server).send(notice(), slot())
        [got] = server.messages
        assert f"127.0.0.1:{server.port} (TLS)" in out.detail
    assert got.tls and got.tls_at_auth is True and got.login == server.username


def test_no_tls_with_credentials_only_to_a_loopback_relay() -> None:
    with FakeSMTP(security="none") as server:
        out = sink(server).send(notice(), slot())
        [got] = server.messages
    assert not got.tls and got.login == server.username
    assert "(no TLS)" in out.detail


def test_without_ca_file_the_private_certificate_is_refused(smtp: FakeSMTP) -> None:
    err = failure(smtp, ca_file=None)
    assert err.retryable is False
    assert "ca_file" in str(err) and "verify_tls" in str(err)
    assert "certificate" in str(err)
    assert smtp.messages == [] and smtp.auth_attempts == []


def test_verify_tls_false_accepts_any_certificate(smtp: FakeSMTP) -> None:
    sink(smtp, ca_file=None, verify_tls=False).send(notice(), slot())
    assert smtp.wait_for(1)[0].tls


def test_implicit_tls_against_a_starttls_port_is_a_configuration_error(smtp: FakeSMTP) -> None:
    err = failure(smtp, security="tls")
    assert err.retryable is False
    assert "security" in str(err) and "465" in str(err)


def test_starttls_against_a_server_without_it_is_a_configuration_error() -> None:
    with FakeSMTP(security="none", auth=False) as server:
        err = failure(server, security="starttls")
    assert err.retryable is False
    assert "STARTTLS" in str(err) and "security: tls" in str(err)


# ---- failures --------------------------------------------------------------------------------------


def test_wrong_password_is_final_and_not_repeated(smtp: FakeSMTP) -> None:
    wrong = "Wr0ng-hunter2-secret"
    err = failure(smtp, password=wrong)
    assert err.retryable is False
    assert "authentication failed" in str(err) and "535" in str(err) and smtp.username in str(err)
    assert wrong not in str(err) and smtp.password not in str(err)
    assert wrong not in repr(err.args)
    assert smtp.auth_attempts and not any(a.success for a in smtp.auth_attempts)  # smtplib tries PLAIN, LOGIN
    assert smtp.messages == []


def test_temporary_refusal_is_retryable_and_the_retry_goes_through(smtp: FakeSMTP) -> None:
    smtp.fail_next("451 4.3.0 try again later")
    mail = sink(smtp)
    with pytest.raises(DeliveryError) as info:
        mail.send(notice(), slot())
    assert info.value.retryable is True
    assert "451 4.3.0 try again later" in str(info.value)
    assert smtp.messages == []

    mail.send(notice(), slot())
    assert len(smtp.wait_for(1)) == 1 and smtp.data_attempts == 2


def test_permanent_refusal_is_final(smtp: FakeSMTP) -> None:
    smtp.fail_next("550 5.7.1 message rejected by policy")
    err = failure(smtp)
    assert err.retryable is False
    assert "550 5.7.1 message rejected by policy" in str(err)


def test_refused_recipients(smtp: FakeSMTP) -> None:
    smtp.refuse("nobody@example.com")
    err = failure(smtp, to=["nobody@example.com"])
    assert err.retryable is False
    assert "nobody@example.com (550 5.1.1 no such user)" in str(err)

    smtp.refuse("greylisted@example.com", "450 4.2.0 greylisted, come back later")
    assert failure(smtp, to=["greylisted@example.com"]).retryable is True
    assert smtp.messages == []


def test_partly_refused_recipients_fail_without_a_retry(smtp: FakeSMTP) -> None:
    smtp.refuse("nobody@example.com")
    err = failure(smtp, to=["oncall@example.com", "nobody@example.com"])
    assert err.retryable is False  # oncall already has it: a retry would send it twice
    assert "sent to 1 of 2 recipients" in str(err) and "nobody@example.com" in str(err)
    assert smtp.wait_for(1)[0].rcpt_tos == ["oncall@example.com"]


def test_connection_refused_is_retryable(smtp: FakeSMTP, closed_port: int) -> None:
    err = failure(smtp, port=closed_port)
    assert err.retryable is True
    assert "connection refused" in str(err)


def test_a_silent_server_times_out_retryably(smtp: FakeSMTP) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never greets
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        err = failure(smtp, port=silent.getsockname()[1], timeout=0.5)
    assert err.retryable is True
    assert "timed out after 0.5s" in str(err)


# ---- configuration ---------------------------------------------------------------------------------


def base_config(**changes: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "type": "email",
        "host": "mail.example.com",
        "from_addr": "alertsleuth@example.com",
        "to": ["oncall@example.com"],
    }
    config.update(changes)
    return {k: v for k, v in config.items() if v is not None}


def error_locs(config: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        EmailConfig.model_validate(config)
    return [".".join(str(p) for p in e["loc"]) for e in info.value.errors()]


def test_defaults() -> None:
    config = EmailConfig.model_validate(base_config())
    assert (config.port, config.security, config.subject_prefix, config.verify_tls) == (
        587,
        "starttls",
        "[alertsleuth]",
        True,
    )
    assert EmailConfig.model_validate(base_config(security="tls")).port == 465
    assert EmailConfig.model_validate(base_config(security="tls", port=2465)).port == 2465


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    assert error_locs(base_config(to=[])) == ["to"]
    assert error_locs(base_config(to=None)) == ["to"]
    assert error_locs(base_config(to=["not-an-address"])) == ["to.0"]
    assert error_locs(base_config(from_addr="alertsleuth")) == ["from_addr"]
    assert error_locs(base_config(cc=["x@example.com\r\nBcc: evil@example.com"])) == ["cc.0"]
    assert error_locs(base_config(security="ssl")) == ["security"]
    assert error_locs(base_config(port=0)) == ["port"]
    assert error_locs(base_config(ca_file=str(tmp_path / "missing.pem"))) == ["ca_file"]
    assert error_locs(base_config(smtp_host="x")) == ["smtp_host"]
    assert error_locs(base_config(password="p")) == ["password"]
    assert error_locs(base_config(username="u")) == ["password"]


def test_credentials_in_clear_text_only_to_loopback() -> None:
    assert error_locs(base_config(security="none", username="u", password="p")) == ["username"]
    config = EmailConfig.model_validate(
        base_config(host="127.0.0.1", security="none", username="u", password="p")
    )
    assert config.port == 25 and config.password is not None
    assert "p" not in repr(config.password)
    EmailConfig.model_validate(base_config(host="localhost", security="none", username="u", password="p"))
    EmailConfig.model_validate(base_config(security="none"))  # an open relay needs no credentials


def test_charts_travel_as_png_parts_of_the_html(smtp: FakeSMTP) -> None:
    page = (
        '<html><head><meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; img-src data:\">"
        '</head><body><figure><svg role="img"><text>signal</text></svg></figure>'
        "<figure><svg><text>cause</text></svg></figure></body></html>"
    )
    pngs = [("r-42.signal.png", b"\x89PNG-signal"), ("r-42.cause-1.png", b"\x89PNG-cause")]
    sink(smtp).send(notice(html=page, charts=lambda: pngs), slot())
    [mail] = smtp.wait_for(1)
    html_part = mail.message.get_body(("html",))
    assert html_part is not None
    shown = html_part.get_content()
    cids = re.findall(r'src="cid:([^"]+)"', shown)
    assert len(cids) == 2 and "<svg" not in shown and "img-src data: cid:" in shown
    images = [p for p in mail.message.walk() if p.get_content_type() == "image/png"]
    assert [p.get_filename() for p in images] == ["r-42.signal.png", "r-42.cause-1.png"]
    assert [p["Content-ID"].strip("<>") for p in images] == cids
    assert images[0].get_content() == b"\x89PNG-signal"
