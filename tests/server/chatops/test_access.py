"""The chat platforms' allow-lists: closed by default, users, groups and `*`, unknown keys refused."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.chatops.access import CLASSES, AccessPolicy, refusal

SETTINGS: dict[str, Any] = {
    "slack": {"read": ["*"], "silence": ["U123", "group:C42"], "run": ["U123"], "approve": ["U999"]},
    "feishu": {"read": ["ou_abc"]},
}


@pytest.fixture
def policy() -> AccessPolicy:
    return AccessPolicy.model_validate(SETTINGS)


def test_a_listed_user_is_allowed(policy: AccessPolicy) -> None:
    assert policy.allowed("slack", "U123", [], "silence")
    assert policy.allowed("slack", "U123", [], "run")
    assert policy.allowed("slack", "U999", [], "approve")
    assert policy.allowed("feishu", "ou_abc", [], "read")
    assert not policy.allowed("slack", "U999", [], "run")
    assert not policy.allowed("slack", "u123", [], "silence")  # ids are compared exactly


def test_a_group_entry_allows_its_members(policy: AccessPolicy) -> None:
    assert policy.allowed("slack", "U555", ["C42"], "silence")
    assert policy.allowed("slack", "U555", ("C1", "C42"), "silence")
    assert not policy.allowed("slack", "U555", ["C43"], "silence")
    assert not policy.allowed("slack", "U555", ["group:C42"], "silence")  # a group id, not an entry
    assert not policy.allowed("slack", "C42", [], "silence")  # a user named like the group is no member


def test_star_allows_everyone_identified(policy: AccessPolicy) -> None:
    assert policy.allowed("slack", "U000", [], "read")
    assert not policy.allowed("slack", "", [], "read")  # no user id: nobody to allow


def test_access_is_closed_by_default(policy: AccessPolicy) -> None:
    assert not policy.allowed("slack", "U123", ["C42"], "act")  # a class not listed: nobody
    assert not policy.allowed("feishu", "ou_abc", [], "silence")
    assert not policy.allowed("dingtalk", "anyone", [], "read")  # a platform not listed: nobody
    assert not policy.allowed("irc", "anyone", [], "read")  # an unknown platform
    assert not policy.allowed("slack", "U123", [], "admin")  # type: ignore[arg-type]  # unknown class
    empty = AccessPolicy.model_validate({})
    assert not any(empty.allowed("slack", "U123", ["C42"], k) for k in CLASSES)


def test_classes_are_independent(policy: AccessPolicy) -> None:
    assert policy.allowed("slack", "U999", [], "approve")
    assert policy.allowed("slack", "U999", [], "read")  # through "*", not through approve
    only_approve = AccessPolicy.model_validate({"wecom": {"approve": ["zhangsan"]}})
    assert not only_approve.allowed("wecom", "zhangsan", [], "read")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"slak": {"read": ["*"]}}, "unknown chat platform 'slak': expected one of slack, feishu"),
        ({"slack": {"silences": ["U1"]}}, "unknown command class 'silences': expected one of read, act"),
        ({"slack": {"read": "*"}}, "not the string '*'"),
        ({"slack": {"read": [""]}}, "non-empty string"),
        ({"slack": {"read": [" U1"]}}, "spaces around it"),
        ({"slack": {"read": ["group:"]}}, "names no group"),
        ({"slack": {"read": [7]}}, "non-empty string"),
        ({"slack": {"read": ["U" * 201]}}, "longer than 200"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AccessPolicy.model_validate(settings)


def test_the_policy_is_frozen(policy: AccessPolicy) -> None:
    with pytest.raises(ValidationError):
        policy.slack = None  # type: ignore[misc]


def test_refusals() -> None:
    assert (
        refusal("silence", "en") == "You may not silence alerts here; ask an operator listed for 'silence'."
    )
    assert refusal("silence", "zh") == "你无权在此静默告警；请联系名单 'silence' 中的运维人员。"
    assert refusal("silence", "zh-CN").startswith("你无权")
    for klass in CLASSES:
        assert f"'{klass}'" in refusal(klass, "en")
        assert f"'{klass}'" in refusal(klass, "zh")
        assert refusal(klass, "en") != refusal("silence", "en") or klass == "silence"
