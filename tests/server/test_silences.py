"""Silences: the adapter against a real Alertmanager on a free loopback port, and the pure parsing of
matchers and durations."""

from __future__ import annotations

import base64
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from exporter import launch as procs
from server.silences import (
    Alertmanagers,
    Matcher,
    SilenceRequest,
    auth_headers,
    incident_matchers,
    parse_duration,
    parse_matchers,
)
from tools.errors import SilenceError

AM_CONFIG = """route:
  receiver: "null"
receivers:
  - name: "null"
"""
LABELS = {
    "alertname": "HighLoginFailureRate",
    "severity": "critical",
    "team": "identity",
    "instance": "web-1",
}


@pytest.fixture
def ams(alertmanager: procs.Process) -> Iterator[Alertmanagers]:
    with Alertmanagers([alertmanager.url], timeout=5.0) as client:
        yield client


def _request(
    matchers: list[Matcher], *, hours: float = 1.0, comment: str = "deploy in progress"
) -> SilenceRequest:
    now = datetime.now(UTC)
    return SilenceRequest(matchers, now, now + timedelta(hours=hours), "alice (slack U123)", comment)


def _dead_url() -> str:
    return f"http://127.0.0.1:{procs.free_port()}"


# ---------------------------------------------------------------------------------------------------
# Against a real Alertmanager
# ---------------------------------------------------------------------------------------------------


def test_create_read_and_expire_a_silence_of_the_incident(
    alertmanager: procs.Process, ams: Alertmanagers
) -> None:
    matchers = incident_matchers(LABELS)
    silence_id = ams.create(_request(matchers))

    silence = ams.get(silence_id)
    assert silence.id == silence_id
    assert silence.state == "active"
    assert silence.created_by == "alice (slack U123)"
    assert silence.comment == "deploy in progress"
    assert silence.matchers == matchers
    assert timedelta(minutes=59) < silence.ends_at - silence.starts_at <= timedelta(hours=1, seconds=1)

    # Alertmanager mutes the incident's alert with it, and not a sibling on another instance.
    alert = {"labels": LABELS, "annotations": {}, "startsAt": datetime.now(UTC).isoformat()}
    sibling = {**alert, "labels": {**LABELS, "instance": "web-2"}}
    httpx.post(f"{alertmanager.url}/api/v2/alerts", json=[alert, sibling], timeout=5).raise_for_status()
    shown = httpx.get(f"{alertmanager.url}/api/v2/alerts", timeout=5).json()
    silenced_by = {a["labels"]["instance"]: a["status"]["silencedBy"] for a in shown}
    assert silenced_by == {"web-1": [silence_id], "web-2": []}

    ams.expire(silence_id)
    assert ams.get(silence_id).state == "expired"

    with pytest.raises(SilenceError, match="already expired") as again:
        ams.expire(silence_id)
    assert again.value.retryable is False


def test_regex_and_negative_matchers_round_trip(ams: Alertmanagers) -> None:
    matchers = parse_matchers('{alertname="HighLoginFailureRate", instance=~"web-\\d+", env!="dev"}')
    silence = ams.get(ams.create(_request(matchers)))
    assert silence.matchers == matchers
    assert [m.op for m in silence.matchers] == ["=", "=~", "!="]
    ams.expire(silence.id)


def test_an_unknown_silence_is_refused_clearly(ams: Alertmanagers) -> None:
    unknown = str(uuid.uuid4())
    with pytest.raises(SilenceError, match="no silence with this id") as expiring:
        ams.expire(unknown)
    assert expiring.value.retryable is False
    assert unknown in str(expiring.value)
    with pytest.raises(SilenceError, match="no silence with this id") as reading:
        ams.get(unknown)
    assert reading.value.retryable is False


def test_a_malformed_id_is_refused_before_any_request() -> None:
    with Alertmanagers([_dead_url()], timeout=1.0) as down:  # nothing listens: no request is made
        for bad in ("../alerts", "", "4f1c1bde"):
            with pytest.raises(SilenceError, match="is not a silence id") as caught:
                down.expire(bad)
            assert caught.value.retryable is False


def test_ends_before_it_starts_is_refused_with_alertmanagers_message(ams: Alertmanagers) -> None:
    now = datetime.now(UTC)
    req = SilenceRequest(incident_matchers(LABELS), now, now - timedelta(hours=1), "alice", "backwards")
    with pytest.raises(SilenceError, match="start time must be before end time") as caught:
        ams.create(req)
    assert caught.value.retryable is False
    assert "HTTP 400" in str(caught.value)


def test_a_bad_matcher_is_refused_with_alertmanagers_message(ams: Alertmanagers) -> None:
    with pytest.raises(SilenceError, match="invalid label name") as name:
        ams.create(_request([Matcher("not a name", "x")]))
    assert name.value.retryable is False
    with pytest.raises(SilenceError, match="invalid regular expression") as regex:
        ams.create(_request([Matcher("alertname", "X"), Matcher("instance", "(", is_regex=True)]))
    assert regex.value.retryable is False


def test_alertmanagers_error_text_is_bounded(ams: Alertmanagers) -> None:
    # Alertmanager quotes the bad regex back; a long one would flood a chat reply.
    with pytest.raises(SilenceError) as caught:
        ams.create(_request([Matcher("alertname", "X"), Matcher("instance", "(" * 2000, is_regex=True)]))
    assert len(str(caught.value)) < 420
    assert str(caught.value).endswith("…")


def test_alertmanager_down_is_retryable() -> None:
    with Alertmanagers([_dead_url()], timeout=2.0) as down:
        with pytest.raises(SilenceError, match="could not be reached") as caught:
            down.create(_request(incident_matchers(LABELS)))
        assert caught.value.retryable is True
        with pytest.raises(SilenceError) as reading:
            down.get(str(uuid.uuid4()))
        assert reading.value.retryable is True


def test_a_timeout_is_retryable() -> None:
    # A socket that listens and never answers: the connection is made, the answer never comes.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        with (
            Alertmanagers([url], timeout=0.5) as hung,
            pytest.raises(SilenceError, match="timed out") as caught,
        ):
            hung.create(_request(incident_matchers(LABELS)))
    assert caught.value.retryable is True


def test_the_first_alertmanager_that_answers_takes_it(alertmanager: procs.Process) -> None:
    dead = _dead_url()
    with Alertmanagers([dead, alertmanager.url], timeout=2.0) as cluster:
        silence_id = cluster.create(_request(incident_matchers(LABELS)))
        assert cluster.get(silence_id).state == "active"
        cluster.expire(silence_id)
    with Alertmanagers([alertmanager.url], timeout=2.0) as one:
        assert one.get(silence_id).state == "expired"


def test_messages_never_show_credentials_in_urls() -> None:
    url = f"http://bob:s3cret@127.0.0.1:{procs.free_port()}/am"
    with Alertmanagers([url], timeout=1.0) as down, pytest.raises(SilenceError) as caught:
        down.get(str(uuid.uuid4()))
    assert "s3cret" not in str(caught.value) and "bob" not in str(caught.value)
    assert "http://127.0.0.1:" in str(caught.value)


def test_auth_headers() -> None:
    assert auth_headers() == {}
    assert auth_headers(bearer="tok") == {"Authorization": "Bearer tok"}
    basic = auth_headers(username="am", password="p:w")["Authorization"]
    assert base64.b64decode(basic.removeprefix("Basic ")) == b"am:p:w"
    with pytest.raises(ValueError, match="not both"):
        auth_headers(username="am", password="x", bearer="tok")


def test_construction_is_checked() -> None:
    with pytest.raises(ValueError, match="no Alertmanager URL"):
        Alertmanagers([], timeout=1.0)
    with pytest.raises(ValueError, match="timezone-aware"):
        SilenceRequest([Matcher("a", "b")], datetime(2026, 1, 1), datetime(2026, 1, 2), "me", "c")


# ---------------------------------------------------------------------------------------------------
# incident_matchers and parse_matchers
# ---------------------------------------------------------------------------------------------------


def test_incident_matchers_are_all_labels_sorted_as_equalities() -> None:
    assert incident_matchers({"team": "db", "alertname": "X"}) == [
        Matcher("alertname", "X"),
        Matcher("team", "db"),
    ]
    with pytest.raises(ValueError, match="no labels"):
        incident_matchers({})
    with pytest.raises(ValueError, match="every alert"):
        incident_matchers({"team": ""})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a=b", Matcher("a", "b")),
        ("a!=b x=y", Matcher("a", "b", is_equal=False)),
        ("a=~b.*", Matcher("a", "b.*", is_regex=True)),
        ('a!~"b|c", x=y', Matcher("a", "b|c", is_regex=True, is_equal=False)),
        ('a="b c"', Matcher("a", "b c")),
        ('a="say \\"hi\\", ok"', Matcher("a", 'say "hi", ok')),
        ('a="back\\\\slash"', Matcher("a", "back\\slash")),
        ('code=~"5\\d\\d"', Matcher("code", "5\\d\\d", is_regex=True)),
        ('"quoted_name"="v"', Matcher("quoted_name", "v")),
        ("a = b", Matcher("a", "b")),
        ('a =~ "x y"', Matcher("a", "x y", is_regex=True)),
        ("a=中文", Matcher("a", "中文")),
    ],
)
def test_each_operator_and_quoting(text: str, expected: Matcher) -> None:
    assert parse_matchers(text)[0] == expected


def test_lists_with_commas_spaces_and_braces() -> None:
    expected = [Matcher("a", "1"), Matcher("b", "x|y", is_regex=True), Matcher("c", "", is_equal=False)]
    for text in (
        'a="1", b=~"x|y", c!=""',
        'a=1 b=~x|y c!=""',
        '{a="1",b=~"x|y",c!=""}',
        '  { a = "1" ,  b =~ "x|y"\n c != "" }  ',
    ):
        assert parse_matchers(text) == expected, text
    assert parse_matchers('{a="}", b="{,"}') == [Matcher("a", "}"), Matcher("b", "{,")]


def test_str_is_the_editable_form_and_reads_back() -> None:
    matchers = [
        Matcher("a", 'q"uote'),
        Matcher("b", "5\\d", is_regex=True),
        Matcher("c", "ends\\"),
        Matcher("d", "line\nbreak\ttab", is_equal=False),
        Matcher("e", "\\n literally", is_regex=True, is_equal=False),
    ]
    text = ", ".join(str(m) for m in matchers)
    assert str(matchers[1]) == 'b=~"5\\d"'
    assert parse_matchers(text) == matchers


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no matchers"),
        ("{}", "no matchers"),
        ("{a=b", "unbalanced braces"),
        ("a=b}", "unbalanced braces"),
        ('a="b', "unterminated quote"),
        ('""=x', "label name is empty"),
        ('"a-b"=x', "'a-b' is not a label name"),
        ("1a=x", "bad matcher '1a=x'"),
        ("a", "bad matcher 'a'"),
        ("a==b", "one '=' is enough"),
        ("a!==b", "one '=' is enough"),
        ("a=~(", "bad regex"),
        ("env!=dev", "would silence every alert"),
        ("env!=dev team!~db", "would silence every alert"),
        ('a=~".*"', "would silence every alert"),
        ('a=~".+"', "would silence every alert"),
        ('a=""', "would silence every alert"),
        ('a=~"x|"', "would silence every alert"),
        ("x" * 4001, "too long"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_matchers(text)


def test_a_negative_matcher_beside_a_restricting_one_is_fine() -> None:
    assert len(parse_matchers('alertname="X", env!="dev", a=~".*"')) == 3


# ---------------------------------------------------------------------------------------------------
# parse_duration
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("30m", timedelta(minutes=30)),
        ("1h30m", timedelta(minutes=90)),
        ("90s", timedelta(seconds=90)),
        ("1d", timedelta(days=1)),
        ("1d12h", timedelta(hours=36)),
        ("1w", timedelta(days=7)),
        (" 2H ", timedelta(hours=2)),
        ("1m", timedelta(minutes=1)),
        ("30d", timedelta(days=30)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "bad duration"),
        ("2", "bad duration '2'"),
        ("2x", "bad duration '2x'"),
        ("h", "bad duration"),
        ("30m1h", "bad duration"),
        ("-1h", "bad duration"),
        ("1.5h", "bad duration"),
        ("59s", "too short: a silence lasts at least 1m"),
        ("0m", "too short"),
        ("31d", "too long: a silence lasts at most 30d"),
        ("9" * 30 + "d", "too long"),
        ("9" * 50 + "s", "bad duration"),
    ],
)
def test_bad_durations(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


def test_the_maximum_is_configurable() -> None:
    assert parse_duration("3h", max_duration=timedelta(hours=4)) == timedelta(hours=3)
    with pytest.raises(ValueError, match="at most 4h"):
        parse_duration("5h", max_duration=timedelta(hours=4))
