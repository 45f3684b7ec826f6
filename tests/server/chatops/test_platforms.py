"""The inbound side of each chat platform: requests built as the platform sends them are verified and
parsed into one `Inbound`; forged, replayed, tampered and misdirected ones are refused naming the check;
replies reach loopback fakes of the reply APIs in the thread, chunked, with cached tokens and failures
mapped to DeliveryError. Known-answer vectors come from the platforms' docs and official samples."""

from __future__ import annotations

import base64
import dataclasses
import json
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from pydantic import ValidationError

from server.chatops.platforms import (
    DingTalkConfig,
    DingTalkPlatform,
    FeishuConfig,
    FeishuPlatform,
    Inbound,
    Platform,
    Raw,
    SlackConfig,
    SlackPlatform,
    WeComConfig,
    WeComPlatform,
    chunks,
    utf8_len,
)
from server.chatops.platforms import feishu as feishu_module
from server.chatops.platforms.slack import signature as slack_signature
from server.delivery.tokens import TokenCache
from tests.fakes import chat_platforms as fake
from tests.fakes.chat_platforms import FEISHU_CHAT, FEISHU_USER, SLACK_CHANNEL, SLACK_USER, serve, without
from tools.errors import ChatRequestRefused, DeliveryError

NOW = 1_763_700_000.0
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"  # Slack's documented example signing secret
FEISHU_TOKEN, FEISHU_KEY = "qwzmWAfXcwUcPngrWc6Cvx0mdNv6gQBh", "kudryavtsev-encrypt-key-0001"
# WeCom's official WXBizMsgCrypt sample: token, EncodingAESKey, receiveid
WECOM_TOKEN, WECOM_KEY, WECOM_CORP = (
    "QDG6eK",
    "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C",
    "wx5823bf96d3bd56c7",
)
WECOM_SECRET = "corp-secret-abc123"
DINGTALK_SECRET = "gbA6hdyTpQ0ZD1yR0CjpnzXcB2b5fw8L9xJvRkMCa7sYqNe3"
PARAGRAPHS = "\n\n".join(f"Paragraph {i}: shard {i}'s failure ratio stayed high. " * 9 for i in range(40))
CHINESE = "登录失败率在上海地区的管理员用户中显著升高，主要集中在凌晨的批量登录请求。" * 60
THREAD, TS = "1763700000.000100", "1763700001.000200"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def refused(platform: Platform, raw: Raw) -> str:
    with pytest.raises(ChatRequestRefused) as info:
        platform.verify_and_parse(raw)
    return str(info.value)


def failure(platform: Platform, inbound: Inbound, http: httpx.Client, text: str = "status") -> DeliveryError:
    with pytest.raises(DeliveryError) as info:
        platform.reply(inbound, text, http)
    return info.value


def words(text: str) -> list[str]:
    return text.split()


# ------------------------------------------------------------------------------------------ chunking


def test_chunks_cut_at_paragraphs_then_lines_then_spaces_and_lose_nothing() -> None:
    parts = chunks(PARAGRAPHS, 1000)
    assert len(parts) > 5 and all(len(p) <= 1000 for p in parts)
    assert all(p.endswith(".") for p in parts)  # whole paragraphs: none ends mid-sentence
    assert words(" ".join(parts)) == words(PARAGRAPHS)
    lines = "\n".join(f"line {i} " + "x" * 30 for i in range(200))
    assert all(p.startswith("line ") for p in chunks(lines, 500))
    assert chunks("a" * 2500, 1000) == ["a" * 1000, "a" * 1000, "a" * 500]
    assert chunks("  \n ", 10) == [] and chunks("short", 10) == ["short"]


def test_chunks_by_bytes_never_split_a_character_or_its_marks() -> None:
    parts = chunks(CHINESE, 2048, measure=utf8_len)
    assert all(utf8_len(p) <= 2048 for p in parts) and "".join(parts) == CHINESE
    accented = "e\u0301" * 600  # "é" as e + a combining acute: never cut between them
    assert all(not p.startswith("\u0301") for p in chunks(accented, 101))
    assert "".join(chunks(accented, 101)) == accented
    family = "👨\u200d👩\u200d👧" * 50
    assert all(not p.startswith("\u200d") and not p.endswith("\u200d") for p in chunks(family, 7))
    with pytest.raises(ValueError):
        chunks("登", 2, measure=utf8_len)


def test_token_cache_fetches_once_for_many_threads_and_forgets_a_refused_token() -> None:
    cache, fetches = TokenCache(margin=300), []

    def fetch() -> tuple[str, float]:
        time.sleep(0.05)
        fetches.append(1)
        return f"token-{len(fetches)}", 7200.0

    threads = [threading.Thread(target=cache.get, args=(fetch,)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fetches) == 1 and cache.get(fetch) == "token-1"
    cache.forget("token-other")  # someone else's stale token changes nothing
    assert cache.get(fetch) == "token-1"
    cache.forget("token-1")
    assert cache.get(fetch) == "token-2"


def test_platform_configs_refuse_unknown_keys_without_echoing_secrets() -> None:
    with pytest.raises(ValidationError) as info:
        SlackConfig(signing_secret="s3cr3t-value", bot_token="xoxb-1", signing_secrte="s3cr3t-value")  # type: ignore[call-arg]
    assert "signing_secrte" in str(info.value) and "s3cr3t-value" not in str(info.value)
    with pytest.raises(ValidationError) as info:
        WeComConfig(token="t", encoding_aes_key="short-key-value", corp_id="c", corp_secret="s", agent_id=1)
    assert "encoding_aes_key" in str(info.value) and "short-key-value" not in str(info.value)
    assert "s3cr3t-value" not in repr(SlackConfig(signing_secret="s3cr3t-value", bot_token="xoxb-1"))


# ---------------------------------------------------------------------------------------------- Slack


def slack(
    api_url: str = "https://slack.com/api", token: str = "xoxb-1111-2222-abcdefabcdef"
) -> SlackPlatform:
    return SlackPlatform(SlackConfig(signing_secret=SLACK_SECRET, bot_token=token, api_url=api_url))


def slack_parse(body: bytes, content_type: str = fake.JSON_TYPE) -> Inbound:
    return slack().verify_and_parse(
        fake.slack_request(SLACK_SECRET, body, now=NOW, content_type=content_type)
    )


def test_slack_known_answer_from_its_docs() -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZ"
        b"RskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert slack_signature(SLACK_SECRET, "1531420618", body) == expected
    headers = {"content-type": fake.FORM_TYPE, "x-slack-request-timestamp": "1531420618"}
    raw = Raw(headers | {"x-slack-signature": expected}, {}, body, now=1531420618 + 30)
    inbound = slack().verify_and_parse(raw)
    assert (inbound.kind, inbound.user, inbound.user_name) == ("command", "U2CERLKJA", "roadrunner")
    assert (inbound.channel, inbound.reply_hint["command"], inbound.text) == (
        "G8PSS9T3V",
        "/webhook-collect",
        "",
    )


def test_slack_message_in_a_thread_mentions_and_challenge() -> None:
    text = "<@U0BOT0001> status  &lt;42&gt; for <@U0BOB0001>"
    assert slack_parse(fake.slack_message(text, thread_ts=THREAD)) == Inbound(
        platform="slack",
        kind="message",
        user=SLACK_USER,
        user_name="",
        channel=SLACK_CHANNEL,
        groups=(SLACK_CHANNEL,),
        thread=THREAD,
        message_id=TS,
        text="status <42> for <@U0BOB0001>",  # the bot's mention goes, entities are decoded
        reply_hint={"channel_type": "channel", "team_id": "T0TEAM001"},
        event_id="Ev0PV52K21",
    )
    top = slack_parse(fake.slack_message("<@U0OTHER01> ack", kind="app_mention"))
    assert (top.kind, top.thread, top.message_id, top.text) == ("message", None, TS, "ack")  # leading mention
    challenge = slack_parse(
        fake.slack_url_verification("3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    )
    assert challenge.kind == "challenge"
    answer = ("text/plain; charset=utf-8", b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P")
    assert slack().challenge_response(challenge) == answer


def test_slack_ignores_bots_and_subtypes_and_parses_commands_and_actions() -> None:
    assert slack_parse(fake.slack_message("hi", bot_id="B0BOT")).kind == "ignored"
    assert slack_parse(fake.slack_message("hi", subtype="message_changed")).kind == "ignored"
    command = slack_parse(fake.slack_command("  silence 2h "), fake.FORM_TYPE)
    assert (command.kind, command.text, command.thread, command.user_name) == (
        "command",
        "silence 2h",
        None,
        "alice",
    )
    assert command.reply_hint["response_url"].startswith("https://hooks.slack.com/commands/")
    payload = fake.slack_block_action(
        "approve", "runbook:restart-auth", ts="1763700005.000100", thread_ts=THREAD
    )
    action = slack_parse(payload, fake.FORM_TYPE)
    assert action.action == {"action": "approve", "value": "runbook:restart-auth", "block_id": "b1"}
    assert (action.kind, action.thread, action.message_id) == ("action", THREAD, "1763700005.000100")
    top = slack_parse(fake.slack_block_action("ack", "42", ts="1763700005.000100"), fake.FORM_TYPE)
    assert top.thread == "1763700005.000100"  # a button on a top-level message: its thread


def test_slack_refuses_forged_missing_and_replayed_requests() -> None:
    body = fake.slack_message("hi")
    good = fake.slack_request(SLACK_SECRET, body, now=NOW)
    forged = fake.slack_request("another-secret", body, now=NOW)
    assert refused(slack(), forged) == "signature mismatch"
    assert (
        refused(slack(), dataclasses.replace(good, body=body.replace(b"hi", b"rm"))) == "signature mismatch"
    )
    assert refused(slack(), without(good, header="x-slack-signature")) == "missing X-Slack-Signature header"
    no_ts = without(good, header="x-slack-request-timestamp")
    assert refused(slack(), no_ts) == "missing X-Slack-Request-Timestamp header"
    replayed = dataclasses.replace(good, now=NOW + 301)
    assert refused(slack(), replayed) == "timestamp outside the 300 s replay window"
    assert slack().verify_and_parse(dataclasses.replace(good, now=NOW - 299)).kind == "message"


def test_slack_replies_in_the_thread_chunked_escaped_and_in_order(http: httpx.Client) -> None:
    with serve(fake.FakeSlackAPI()) as api:
        platform = slack(api.api_url)
        in_thread = Inbound("slack", "message", SLACK_USER, "", SLACK_CHANNEL, thread=THREAD, message_id=TS)
        text = "<!channel> ack & go\n\n" + PARAGRAPHS
        platform.reply(in_thread, text, http)
        assert len(api.messages) > 3 and all(len(m["text"]) <= 3000 for m in api.messages)
        assert {(m["channel"], m["thread_ts"]) for m in api.messages} == {(SLACK_CHANNEL, THREAD)}
        assert api.messages[0]["text"].startswith("&lt;!channel&gt; ack &amp; go")  # no mention, no link
        sent = " ".join(m["text"] for m in api.messages)
        assert words(sent.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")) == words(text)
        api.messages.clear()
        command = Inbound("slack", "command", SLACK_USER, "alice", SLACK_CHANNEL, text="status")
        platform.reply(command, PARAGRAPHS, http)  # in no thread: the first message starts one
        assert "thread_ts" not in api.messages[0]
        assert {m["thread_ts"] for m in api.messages[1:]} == {api.messages[0]["ts"]}


def test_slack_reply_failures_are_retryable_only_when_worth_it(http: httpx.Client) -> None:
    inbound = Inbound("slack", "message", SLACK_USER, "", SLACK_CHANNEL, message_id=TS)
    with serve(fake.FakeSlackAPI()) as api:
        api.rate_limit()
        error = failure(slack(api.api_url), inbound, http)
        assert error.retryable and "ratelimited" in str(error)
        api.rate_limit(http=True, retry_after=7)
        error = failure(slack(api.api_url), inbound, http)
        assert error.retryable and error.retry_after == 7
        error = failure(slack(api.api_url, token="xoxb-wrong-token-0000"), inbound, http)
        assert not error.retryable and "invalid_auth" in str(error) and "xoxb-wrong" not in str(error)
        slack(api.api_url).reply(inbound, "status", http)
        assert api.messages[-1]["thread_ts"] == TS  # a top-level message is answered in its thread
    error = failure(slack("http://127.0.0.1:9"), inbound, http)  # nothing listens there
    assert error.retryable


# --------------------------------------------------------------------------------------------- Feishu


def feishu(api_url: str = "https://open.feishu.cn/open-apis", encrypt: bool = True) -> FeishuPlatform:
    config = FeishuConfig(
        verification_token=FEISHU_TOKEN,
        encrypt_key=FEISHU_KEY if encrypt else None,
        app_id="cli_a5f0e2d7c4b3a00d",
        app_secret="Xk2vR9pLq4sT7wYz1bN6mC3dF8gH5jKa",
        api_url=api_url,
    )
    return FeishuPlatform(config)


def test_feishu_known_answer_from_its_docs() -> None:
    official = "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk="  # "hello world" under the key "test key"
    assert feishu_module.decrypt("test key", official) == b"hello world"
    iv = base64.b64decode(official)[:16]  # the fakes' Feishu side, given the IV, makes the same bytes
    assert fake.feishu_encrypt("test key", b"hello world", iv) == official


def test_feishu_encrypted_signed_message_in_a_thread() -> None:
    payload = fake.feishu_message(FEISHU_TOKEN, "@_user_1 status  42", root_id="om_root0001")
    assert feishu().verify_and_parse(
        fake.feishu_request(payload, now=NOW, encrypt_key=FEISHU_KEY)
    ) == Inbound(
        platform="feishu",
        kind="message",
        user=FEISHU_USER,
        user_name="",
        channel=FEISHU_CHAT,
        groups=(FEISHU_CHAT,),
        thread="om_root0001",
        message_id="om_dc13264520392913993dd051dba21dcf",
        text="status 42",
        reply_hint={"chat_type": "group", "user_id": "e33ggbyz", "tenant_key": "736588c9260f175e"},
        event_id="5e3702a84e847582be8db7fb73283c02",
    )
    plain = feishu(encrypt=False).verify_and_parse(fake.feishu_request(payload, now=NOW))
    assert plain.text == "status 42"  # without an encrypt key the token is the check
    for kind in ({"sender_type": "app"}, {"message_type": "image"}):
        other = fake.feishu_message(FEISHU_TOKEN, "hi", **kind)
        assert (
            feishu().verify_and_parse(fake.feishu_request(other, now=NOW, encrypt_key=FEISHU_KEY)).kind
            == "ignored"
        )


def test_feishu_url_verification_plain_and_encrypted() -> None:
    challenge = fake.feishu_url_verification(FEISHU_TOKEN, "1b6aef1a-401f-406a-be41-f48911eabcef")
    plain = feishu(encrypt=False).verify_and_parse(fake.feishu_request(challenge, now=NOW))
    answer = b'{"challenge": "1b6aef1a-401f-406a-be41-f48911eabcef"}'
    assert feishu().challenge_response(plain) == ("application/json; charset=utf-8", answer)
    unsigned = fake.feishu_request(challenge, now=NOW, encrypt_key=FEISHU_KEY, signed=False)
    assert feishu().verify_and_parse(unsigned).challenge == "1b6aef1a-401f-406a-be41-f48911eabcef"
    wrong = challenge | {"token": "not-the-token"}
    unsigned_wrong = fake.feishu_request(wrong, now=NOW, encrypt_key=FEISHU_KEY, signed=False)
    assert refused(feishu(), unsigned_wrong) == feishu_module.UNSIGNED
    assert (
        refused(feishu(encrypt=False), fake.feishu_request(wrong, now=NOW)) == "verification token mismatch"
    )


def test_feishu_card_actions_legacy_and_trigger() -> None:
    callback = fake.feishu_card_callback({"action": "approve", "runbook": "restart-auth", "ttl": 2})
    raw = fake.feishu_request(callback, now=NOW, card_token=FEISHU_TOKEN)  # sha1 with the verification token
    inbound = feishu(encrypt=False).verify_and_parse(raw)
    assert inbound.action == {"action": "approve", "runbook": "restart-auth", "ttl": "2"}
    assert (inbound.kind, inbound.message_id, inbound.channel, inbound.thread) == (
        "action",
        "om_card0001",
        FEISHU_CHAT,
        None,
    )
    assert inbound.reply_hint["card_token"].startswith("c-")
    assert feishu().verify_and_parse(raw).kind == "action"  # the same with an encrypt key configured
    unsigned = fake.feishu_request(callback, now=NOW)
    assert refused(feishu(encrypt=False), unsigned) == "missing X-Lark-Signature header"
    trigger = fake.feishu_card_trigger(FEISHU_TOKEN, {"action": "ack", "incident": 42})
    card = feishu().verify_and_parse(fake.feishu_request(trigger, now=NOW, encrypt_key=FEISHU_KEY))
    assert card.action == {"action": "ack", "incident": "42"} and card.message_id == "om_card0002"
    assert card.event_id == "f7984f25108f8137722bb63cee927e66" and card.user == FEISHU_USER


def test_feishu_refuses_forged_replayed_tampered_and_wrong_token() -> None:
    payload = fake.feishu_message(FEISHU_TOKEN, "@_user_1 status")
    good = fake.feishu_request(payload, now=NOW, encrypt_key=FEISHU_KEY)
    assert (
        refused(feishu(), fake.feishu_request(payload, now=NOW, encrypt_key="another-key"))
        == "signature mismatch"
    )
    assert (
        refused(feishu(), dataclasses.replace(good, now=NOW + 400))
        == "timestamp outside the 300 s replay window"
    )
    stolen = fake.feishu_request(
        fake.feishu_message("stolen-token", "status"), now=NOW, encrypt_key=FEISHU_KEY
    )
    assert refused(feishu(), stolen) == "verification token mismatch"
    data = bytearray(base64.b64decode(json.loads(good.body)["encrypt"]))
    data[-1] ^= 0x01  # the last block: its padding no longer decrypts
    tampered = json.dumps({"encrypt": base64.b64encode(bytes(data)).decode()}).encode()
    assert refused(feishu(), dataclasses.replace(good, body=tampered)) == "signature mismatch"
    resigned = fake.feishu_signed(tampered, now=NOW, encrypt_key=FEISHU_KEY)
    assert refused(feishu(), resigned) == "decryption failed"
    unsigned = fake.feishu_signed(tampered, now=NOW, encrypt_key=FEISHU_KEY, signed=False)
    assert refused(feishu(), unsigned) == feishu_module.UNSIGNED  # one answer, whatever failed
    assert refused(feishu(), fake.feishu_request(payload, now=NOW)) == feishu_module.UNSIGNED
    assert refused(feishu(encrypt=False), good) == "signature mismatch (no encrypt_key is configured)"
    encrypted = fake.feishu_request(payload, now=NOW, encrypt_key=FEISHU_KEY, signed=False)
    assert (
        refused(feishu(encrypt=False), encrypted) == "the body is encrypted and no encrypt_key is configured"
    )
    assert all(
        FEISHU_KEY not in refused(feishu(), r) and FEISHU_TOKEN not in refused(feishu(), r)
        for r in (resigned, stolen)
    )


def test_feishu_replies_in_the_thread_with_one_token_and_no_duplicate_on_retry(http: httpx.Client) -> None:
    with serve(fake.FakeFeishuAPI()) as api:
        platform = feishu(api.api_url)
        inbound = Inbound(
            "feishu", "message", FEISHU_USER, "", FEISHU_CHAT, thread="om_root", message_id="om_msg1"
        )
        text = '<at user_id="all">everyone</at> look\n\n' + PARAGRAPHS
        platform.reply(inbound, text, http)
        platform.reply(inbound, "second reply", http)
        assert api.token_fetches == 1 and len(api.replies) > 3
        assert {(r["message_id"], r["reply_in_thread"]) for r in api.replies} == {("om_msg1", True)}
        assert all(len(r["text"]) <= 4000 for r in api.replies)
        assert api.replies[0]["text"].startswith("<\u200bat user_id")  # our text mentions no one
        assert words(" ".join(r["text"] for r in api.replies[:-1]).replace("\u200b", "")) == words(text)
        count = len(api.replies)
        platform.reply(inbound, "second reply", http)  # a retry: Feishu drops the repeated uuid
        assert len(api.replies) == count
        platform.reply(
            Inbound("feishu", "action", FEISHU_USER, "", FEISHU_CHAT, message_id="om_card"), "ok", http
        )
        assert (api.replies[-1]["message_id"], api.replies[-1]["reply_in_thread"]) == ("om_card", False)


def test_feishu_buttons_come_as_a_card_whose_click_brings_their_command_back(http: httpx.Client) -> None:
    """A reply with buttons (a proposed runbook's Approve and Deny): the chunks before the last are text,
    the last a message card with the buttons; a click on one comes back as a card action naming the
    button's command, as Slack's do."""
    with serve(fake.FakeFeishuAPI()) as api:
        platform = feishu(api.api_url)
        inbound = Inbound(
            "feishu", "message", FEISHU_USER, "", FEISHU_CHAT, thread="om_root", message_id="om_m"
        )
        text = PARAGRAPHS + "\n\nDry run successful. Approve with `approve 7`."
        platform.reply(inbound, text, http, [("Approve", "approve 7"), ("Deny", "deny 7")])
        *texts, last = api.replies
        assert texts and all(r["msg_type"] == "text" and r["card"] is None for r in texts)
        assert last["msg_type"] == "interactive" and last["text"].endswith("Approve with `approve 7`.")
        assert words(" ".join(r["text"] for r in api.replies)) == words(text)  # nothing lost or doubled
        [row] = [e for e in last["card"]["elements"] if e["tag"] == "action"]
        assert [(b["text"]["content"], b["type"], b["value"]) for b in row["actions"]] == [
            ("Approve", "primary", {"action": "approve", "value": "7"}),
            ("Deny", "danger", {"action": "deny", "value": "7"}),
        ]
        click = fake.feishu_card_trigger(FEISHU_TOKEN, row["actions"][1]["value"])
        inbound = feishu().verify_and_parse(fake.feishu_request(click, now=NOW, encrypt_key=FEISHU_KEY))
        assert (inbound.kind, inbound.action) == ("action", {"action": "deny", "value": "7"})
        platform.reply(inbound, "status", http)  # no buttons: plain text
        assert api.replies[-1]["msg_type"] == "text" and api.replies[-1]["card"] is None


def test_feishu_reply_failures_drop_a_refused_token(http: httpx.Client) -> None:
    with serve(fake.FakeFeishuAPI()) as api:
        platform = feishu(api.api_url)
        inbound = Inbound("feishu", "message", FEISHU_USER, "", FEISHU_CHAT, message_id="om_msg1")
        platform.reply(inbound, "one", http)
        api.expire_tokens()
        error = failure(platform, inbound, http, "two")
        assert error.retryable and "99991663" in str(error)
        platform.reply(inbound, "two", http)  # the refused token was dropped: a new one is fetched
        assert api.token_fetches == 2 and api.replies[-1]["text"] == "two"
        api.fail(99991400, "request trigger frequency limit")
        assert failure(platform, inbound, http, "three").retryable
        api.fail(230002, "The bot can not be outside the group.")
        error = failure(platform, inbound, http, "three")
        assert not error.retryable and "230002" in str(error)
        wrong = FeishuPlatform(
            FeishuConfig(**(platform.config.model_dump() | {"app_secret": "wrong-secret-123"}))
        )
        error = failure(wrong, inbound, http, "four")
        assert not error.retryable and "10014" in str(error) and "wrong-secret-123" not in str(error)


# ---------------------------------------------------------------------------------------------- WeCom


def wecom(api_url: str = "https://qyapi.weixin.qq.com/cgi-bin") -> WeComPlatform:
    return WeComPlatform(
        WeComConfig(
            token=WECOM_TOKEN,
            encoding_aes_key=WECOM_KEY,
            corp_id=WECOM_CORP,
            corp_secret=WECOM_SECRET,
            agent_id=218,
            api_url=api_url,
        )
    )


def wecom_post(msg: bytes, receiver: str = WECOM_CORP, token: str = WECOM_TOKEN) -> Raw:
    return fake.wecom_post(token, fake.wecom_encrypt(WECOM_KEY, msg, receiver), corp_id=WECOM_CORP, now=NOW)


def test_wecom_known_answers_from_the_official_samples() -> None:
    encrypted = (
        "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg"
        "3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+k"
        "DZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6ti"
        "WSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p"
        "8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
    )
    body = f"<xml><ToUserName><![CDATA[{WECOM_CORP}]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
    body += "<AgentID><![CDATA[218]]></AgentID></xml>"
    query = {
        "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
        "timestamp": "1409659813",
        "nonce": "1372623149",
    }
    inbound = wecom().verify_and_parse(
        Raw({"content-type": "text/xml"}, query, body.encode(), now=1409659813)
    )
    assert (inbound.kind, inbound.user, inbound.channel, inbound.text) == (
        "message",
        "mycreate",
        "mycreate",
        "hello",
    )
    assert (inbound.message_id, inbound.thread, inbound.reply_hint["agent_id"]) == (
        "4561255354251345929",
        None,
        "218",
    )
    echostr = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    verify = {
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "timestamp": "1409659589",
        "nonce": "263014780",
    }
    for echo in (echostr, echostr.replace("+", " ")):  # a query decoder may have turned + into a space
        challenge = wecom().verify_and_parse(Raw({}, verify | {"echostr": echo}, b"", now=1409659589))
        assert wecom().challenge_response(challenge) == ("text/plain; charset=utf-8", b"1616140317555161061")


def test_wecom_round_trip_url_verification_and_events() -> None:
    inbound = wecom().verify_and_parse(
        wecom_post(fake.wecom_text("zhangsan", "  status 42 ", corp_id=WECOM_CORP))
    )
    assert (inbound.user, inbound.text, inbound.groups) == ("zhangsan", "status 42", ())
    assert (
        inbound.reply_hint == {"agent_id": "1000002", "chat_type": "single"}
        and inbound.event_id == inbound.message_id
    )
    echo = fake.wecom_encrypt(WECOM_KEY, b"8126734401983", WECOM_CORP)
    assert (
        wecom().verify_and_parse(fake.wecom_verify_url(WECOM_TOKEN, echo, now=NOW)).challenge
        == "8126734401983"
    )
    assert (
        wecom()
        .verify_and_parse(wecom_post(fake.wecom_event("zhangsan", "enter_agent", corp_id=WECOM_CORP)))
        .kind
        == "ignored"
    )


def test_wecom_refuses_forged_replayed_tampered_foreign_and_dtd() -> None:
    msg = fake.wecom_text("zhangsan", "status", corp_id=WECOM_CORP)
    good = wecom_post(msg)
    assert refused(wecom(), wecom_post(msg, token="not-the-token")) == "signature mismatch"
    assert (
        refused(wecom(), dataclasses.replace(good, now=NOW + 301))
        == "timestamp outside the 300 s replay window"
    )
    assert refused(wecom(), without(good, query="msg_signature")) == "missing msg_signature query parameter"
    assert refused(wecom(), wecom_post(msg, receiver="ww-another-corp")).startswith("corp id mismatch")
    encrypted = fake.wecom_encrypt(WECOM_KEY, msg, WECOM_CORP)
    data = bytearray(base64.b64decode(encrypted))
    data[-1] ^= 0x5A
    tampered = base64.b64encode(bytes(data)).decode()
    signed_good = fake.wecom_post(WECOM_TOKEN, encrypted, corp_id=WECOM_CORP, now=NOW)
    swapped = dataclasses.replace(
        signed_good, body=signed_good.body.replace(encrypted.encode(), tampered.encode())
    )
    assert refused(wecom(), swapped) == "signature mismatch"
    assert (
        refused(wecom(), fake.wecom_post(WECOM_TOKEN, tampered, corp_id=WECOM_CORP, now=NOW))
        == "decryption failed"
    )
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><xml><Encrypt>&a;</Encrypt></xml>'
    assert refused(wecom(), dataclasses.replace(good, body=bomb)) == "body declares a DTD or entity"
    inner = wecom_post(b'<!DOCTYPE xml [<!ENTITY a "b">]><xml>&a;</xml>')
    assert refused(wecom(), inner) == "decrypted message declares a DTD or entity"


def test_wecom_replies_by_bytes_with_one_token(http: httpx.Client) -> None:
    with serve(fake.FakeWeComAPI(corp_id=WECOM_CORP, corp_secret=WECOM_SECRET, agent_id=218)) as api:
        platform = wecom(api.api_url)
        inbound = Inbound("wecom", "message", "zhangsan", "", "zhangsan", message_id="1")
        platform.reply(inbound, CHINESE, http)
        platform.reply(inbound, "done", http)
        assert api.token_fetches == 1 and len(api.messages) > 3
        contents = [m["text"]["content"] for m in api.messages]
        assert all(utf8_len(c) <= 2048 for c in contents) and "".join(contents[:-1]) == CHINESE
        api.expire_tokens()
        error = failure(platform, inbound, http)
        assert error.retryable and "42001" in str(error)
        platform.reply(inbound, "again", http)
        assert api.token_fetches == 2
        api.fail(45009, "api freq out of limit")
        assert failure(platform, inbound, http).retryable
        error = failure(platform, dataclasses.replace(inbound, user="lisi", channel="lisi"), http)
        assert not error.retryable and "visible range" in str(error)
        wrong = WeComPlatform(
            WeComConfig(**(platform.config.model_dump() | {"corp_secret": "wrong-secret-456"}))
        )
        error = failure(wrong, inbound, http)
        assert not error.retryable and "40001" in str(error) and "wrong-secret-456" not in str(error)


def test_wecom_buttons_come_as_a_template_card_whose_click_brings_their_command_back(
    http: httpx.Client,
) -> None:
    """A reply with buttons: its text as text messages, then a button-interaction template card whose
    buttons' keys are the commands; a click (template_card_event, encrypted and signed as WeCom sends
    it) is an action naming the command, as on Slack and Feishu, once per click."""
    with serve(fake.FakeWeComAPI(corp_id=WECOM_CORP, corp_secret=WECOM_SECRET, agent_id=218)) as api:
        platform = wecom(api.api_url)
        inbound = Inbound("wecom", "message", "zhangsan", "", "zhangsan", message_id="1", event_id="m1")
        text = "操作 7，restart-region：演练结果 successful。批准请回复 `approve 7`，拒绝请回复 `deny 7`。"
        platform.reply(inbound, text, http, [("批准", "approve 7"), ("拒绝", "deny 7")])
        said, card = api.messages
        assert said["msgtype"] == "text" and said["text"]["content"] == text  # nothing of it is lost
        assert card["msgtype"] == "template_card" and card["touser"] == "zhangsan"
        tc = card["template_card"]
        assert tc["card_type"] == "button_interaction" and tc["main_title"]["title"].startswith("操作 7")
        assert [(b["text"], b["key"], b["style"]) for b in tc["button_list"]] == [
            ("批准", "approve 7", 1),
            ("拒绝", "deny 7", 2),
        ]
        click = wecom_post(fake.wecom_card_event("zhangsan", "deny 7", tc["task_id"], corp_id=WECOM_CORP))
        got = platform.verify_and_parse(click)
        assert (got.kind, got.user, got.channel, got.action) == (
            "action",
            "zhangsan",
            "zhangsan",
            {"action": "deny", "value": "7"},
        )
        assert got.event_id == platform.verify_and_parse(click).event_id  # a retried event is one click
        platform.reply(inbound, text, http)  # no buttons: no card
        assert [m["msgtype"] for m in api.messages] == ["text", "template_card", "text"]


# ------------------------------------------------------------------------------------------- DingTalk


def dingtalk(test_hosts: tuple[str, ...] = ()) -> DingTalkPlatform:
    return DingTalkPlatform(DingTalkConfig(app_secret=DINGTALK_SECRET, http_webhook_hosts=test_hosts))


WEBHOOK = "https://oapi.dingtalk.com/robot/sendBySession?session=c2a1b0e9f8d7"


def test_dingtalk_message_parses_and_strips_the_mention() -> None:
    payload = fake.dingtalk_message(
        " @alertsleuth  status 42", webhook=WEBHOOK, expires_ms=int(NOW * 1000) + 5_400_000
    )
    inbound = dingtalk().verify_and_parse(fake.dingtalk_request(DINGTALK_SECRET, payload, now=NOW))
    assert (inbound.kind, inbound.user, inbound.user_name, inbound.text) == (
        "message",
        "manager4220",
        "杨明",
        "status 42",
    )
    assert (inbound.channel, inbound.groups, inbound.thread) == (
        "cidT4uyY7Xw2sSFMVgEkAUCcA==",
        (inbound.channel,),
        None,
    )
    assert (
        inbound.reply_hint["session_webhook"] == WEBHOOK and inbound.event_id == "msgT0N5ZgWfjyZ6SgHw1Cn1Vg=="
    )
    picture = fake.dingtalk_request(DINGTALK_SECRET, payload | {"msgtype": "picture"}, now=NOW)
    assert dingtalk().verify_and_parse(picture).kind == "ignored"


def test_dingtalk_refuses_forged_replayed_and_foreign_webhooks() -> None:
    payload = fake.dingtalk_message("status", webhook=WEBHOOK, expires_ms=int(NOW * 1000) + 5_400_000)
    good = fake.dingtalk_request(DINGTALK_SECRET, payload, now=NOW)
    assert (
        refused(dingtalk(), fake.dingtalk_request("another-secret", payload, now=NOW)) == "signature mismatch"
    )
    assert refused(dingtalk(), without(good, header="sign")) == "missing sign header"
    assert (
        refused(dingtalk(), dataclasses.replace(good, now=NOW + 3601))
        == "timestamp outside the 3600 s replay window"
    )
    assert (
        dingtalk().verify_and_parse(dataclasses.replace(good, now=NOW + 3500)).kind == "message"
    )  # within the hour
    for url in (
        "https://evil.example.com/robot/sendBySession?session=s1",
        "http://oapi.dingtalk.com/robot/sendBySession?session=s1",
        "https://oapi.dingtalk.com@evil.example.com/robot/sendBySession",
        "https://user:pw@oapi.dingtalk.com/robot/sendBySession",
        "ftp://oapi.dingtalk.com/x",
    ):
        forged = fake.dingtalk_request(DINGTALK_SECRET, payload | {"sessionWebhook": url}, now=NOW)
        assert refused(dingtalk(), forged) == "sessionWebhook host not allowed", url


def test_dingtalk_replies_through_the_session_webhook(http: httpx.Client) -> None:
    with serve(fake.FakeDingTalkSessions()) as api:
        platform = dingtalk(("127.0.0.1",))
        payload = fake.dingtalk_message(
            "status", webhook=api.session_url(), expires_ms=int(time.time() * 1000) + 60_000
        )
        inbound = platform.verify_and_parse(fake.dingtalk_request(DINGTALK_SECRET, payload, now=time.time()))
        emoji = "告警 🔥 " * 3000  # 4-byte characters: the 20,000-byte bound cuts before 5,000 characters
        platform.reply(inbound, emoji + "\n\n" + PARAGRAPHS, http)
        assert all(len(m["text"]["content"]) <= 5000 for m in api.messages)
        assert all(len(json.dumps(m, ensure_ascii=False).encode()) <= 20_000 for m in api.messages)
        assert words(" ".join(m["text"]["content"] for m in api.messages)) == words(emoji + PARAGRAPHS)
        api.fail_next(fake.Answer(200, {"errcode": 130101, "errmsg": "send too fast"}))
        error = failure(platform, inbound, http)
        assert error.retryable and error.retry_after == 600
        past = str(int(time.time() * 1000) - 1)
        error = failure(
            platform,
            dataclasses.replace(inbound, reply_hint=inbound.reply_hint | {"session_webhook_expires": past}),
            http,
        )
        assert not error.retryable and "expired" in str(error)
        forged = dataclasses.replace(inbound, reply_hint={"session_webhook": "https://evil.example.com/x"})
        assert not failure(platform, forged, http).retryable
