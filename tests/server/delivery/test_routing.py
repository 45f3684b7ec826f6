"""The route tree and its matchers, pinned against Alertmanager's documented routing.

Alertmanager: a route matches when all its matchers match; its children are tried in order and the first
matching child wins unless it has `continue: true`; when no child matches, the route itself delivers.
Regex matchers are anchored, a missing label equals "", and settings are inherited by children.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from server.delivery.routing import Route, RouteMatcher, Target, route


def tree(data: dict[str, Any]) -> Route:
    return Route.model_validate(data)


def sinks(node: Route, labels: dict[str, str]) -> list[str]:
    return [t.sink for t in route(node, labels)]


def resolved(node: Route, labels: dict[str, str]) -> dict[str, bool]:
    return {t.sink: t.send_resolved for t in route(node, labels)}


# ---------------------------------------------------------------- parsing matchers


@pytest.mark.parametrize(
    ("text", "name", "op", "value"),
    [
        ('severity="critical"', "severity", "=", "critical"),
        ("severity=critical", "severity", "=", "critical"),
        ('env!="dev"', "env", "!=", "dev"),
        ("env!=dev", "env", "!=", "dev"),
        ('team=~"db|storage"', "team", "=~", "db|storage"),
        ('team!~"db|storage"', "team", "!~", "db|storage"),
        ("team=~db|storage", "team", "=~", "db|storage"),
        ('  team  =~  "db"  ', "team", "=~", "db"),
        ("_private=x", "_private", "=", "x"),
        ("a1_B2=x", "a1_B2", "=", "x"),
        # empty values: `=""` is how Alertmanager says "the label is absent"
        ('team=""', "team", "=", ""),
        ("team=", "team", "=", ""),
        ('team!=""', "team", "!=", ""),
        # quoted values: escapes and UTF-8
        (r'msg="say \"hi\""', "msg", "=", 'say "hi"'),
        (r'path="C:\\temp"', "path", "=", "C:\\temp"),
        (r'text="a\nb"', "text", "=", "a\nb"),
        (r'text="a\tb"', "text", "=", "a\tb"),
        ('region="上海"', "region", "=", "上海"),
        ("region=上海", "region", "=", "上海"),
        ('mood="🔥 on fire"', "mood", "=", "🔥 on fire"),
        ('with_comma="a,b"', "with_comma", "=", "a,b"),
        ('op_chars="a=~b!=c"', "op_chars", "=", "a=~b!=c"),
        # quoted (UTF-8) label names, as Alertmanager 0.27+ allows
        ('"service name"="login"', "service name", "=", "login"),
        ('"地域"=~"上海|北京"', "地域", "=~", "上海|北京"),
        (r'"a\"b"="c"', 'a"b', "=", "c"),
    ],
)
def test_parse(text: str, name: str, op: str, value: str) -> None:
    assert RouteMatcher.parse(text) == RouteMatcher(name, op, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "regex"),
    [
        # Alertmanager keeps a backslash that does not start \" \\ or \n, so regex escapes survive quoting
        (r'code=~"5\d\d"', r"5\d\d"),
        (r'host=~"db\.example\.com"', r"db\.example\.com"),
        (r'path=~"/api/v\d+/.*"', r"/api/v\d+/.*"),
        (r'x=~"\w+\s\w+"', r"\w+\s\w+"),
        (r'x=~"a\\.b"', r"a\.b"),  # \\ is one backslash, then the dot
        (r"code=~5\d\d", r"5\d\d"),  # unquoted values are taken as written
    ],
)
def test_regex_escapes_survive_quoting(text: str, regex: str) -> None:
    assert RouteMatcher.parse(text).value == regex


def test_quoted_and_unquoted_regex_agree() -> None:
    quoted, bare = RouteMatcher.parse(r'code=~"5\d\d"'), RouteMatcher.parse(r"code=~5\d\d")
    for code, hit in (("503", True), ("599", True), ("5dd", False), ("404", False)):
        assert quoted.matches({"code": code}) is hit
        assert bare.matches({"code": code}) is hit
    dotted = RouteMatcher.parse(r'host=~"db\.example\.com"')
    assert dotted.matches({"host": "db.example.com"})
    assert not dotted.matches({"host": "dbXexampleYcom"})


@pytest.mark.parametrize(
    "text",
    [
        "",
        "severity",
        'severity~"critical"',
        'severity=="critical"',
        'severity=>"critical"',
        '="critical"',
        '1abc="x"',
        'sev-erity="critical"',
        'service.name="x"',
        'severity="critical',  # unterminated quote
        'severity="crit"ical"',  # unescaped quote inside
        'severity=crit"ical',
        "severity=two words",
        'severity="a" extra',
        'a="b",c="d"',  # one matcher per list item
        '{severity="critical"}',
    ],
)
def test_bad_matchers(text: str) -> None:
    with pytest.raises(ValueError, match="bad matcher"):
        RouteMatcher.parse(text)


@pytest.mark.parametrize("regex", ["(", "[a-", "*", "a{2,1}", "(?P<x>a)(?P<x>b)"])
@pytest.mark.parametrize("op", ["=~", "!~"])
def test_bad_regex(op: str, regex: str) -> None:
    text = f'job{op}"{regex}"'
    with pytest.raises(ValueError, match="bad regex") as err:
        RouteMatcher.parse(text)
    assert repr(text) in str(err.value)  # says which matcher


@pytest.mark.parametrize("regex", ["(", "[a-"])
def test_equality_values_are_not_regexes(regex: str) -> None:
    m = RouteMatcher.parse(f'job="{regex}"')
    assert m.matches({"job": regex})


# ---------------------------------------------------------------- matching one label


@pytest.mark.parametrize(
    ("text", "labels", "hit"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "Critical"}, False),  # case-sensitive
        ('severity="critical"', {"severity": "critical "}, False),
        ('severity="critical"', {}, False),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('severity!="critical"', {"severity": "critical"}, False),
        ('severity!="critical"', {}, True),  # missing is "", which is not "critical"
        # a missing label equals ""
        ('team=""', {}, True),
        ('team=""', {"team": ""}, True),
        ('team=""', {"team": "db"}, False),
        ('team!=""', {}, False),
        ('team!=""', {"team": "db"}, True),
        ('team=~".*"', {}, True),
        ('team=~".+"', {}, False),
        ('team=~".+"', {"team": "db"}, True),
        ('team!~".+"', {}, True),
        ('team=~"db|"', {}, True),
        ('team=~"db"', {}, False),
        ('team!~"db"', {}, True),
        # anchored: the whole value must match, on both sides, around every alternative
        ('team=~"db"', {"team": "db"}, True),
        ('team=~"db"', {"team": "dba"}, False),
        ('team=~"db"', {"team": "mydb"}, False),
        ('team=~"db|net"', {"team": "net"}, True),
        ('team=~"db|net"', {"team": "network"}, False),
        ('team=~"db|net"', {"team": "xdb"}, False),
        ('team=~"d."', {"team": "db"}, True),
        ('team=~"d."', {"team": "dbx"}, False),
        ('team=~"db.*"', {"team": "dbx"}, True),
        ('team=~"^db$"', {"team": "db"}, True),  # explicit anchors are harmless
        ('team=~"db"', {"team": "db\n"}, False),  # no end-of-line loophole
        ('team=~"(?i)DB"', {"team": "db"}, True),
        # !~ is the exact negation of =~
        ('team!~"db|net"', {"team": "db"}, False),
        ('team!~"db|net"', {"team": "dba"}, True),
        ('team!~"db|net"', {"team": "storage"}, True),
        # UTF-8 values and names
        ('region="上海"', {"region": "上海"}, True),
        ('region=~"上.|北京"', {"region": "上海"}, True),
        ('region=~"上"', {"region": "上海"}, False),
        ('"地域"="上海"', {"地域": "上海"}, True),
        ('mood="🔥"', {"mood": "🔥"}, True),
        (r'msg="say \"hi\""', {"msg": 'say "hi"'}, True),
        (r'text="a\nb"', {"text": "a\nb"}, True),
    ],
)
def test_matches(text: str, labels: dict[str, str], hit: bool) -> None:
    assert RouteMatcher.parse(text).matches(labels) is hit


@pytest.mark.parametrize("value", ["", "db", "dba", "net", "mydb", "上海", "db\n", "DB"])
def test_negations_are_complements(value: str) -> None:
    for pattern in ("db", "db|net", ".*", "d.?", "上."):
        pos = RouteMatcher("team", "=~", pattern).matches({"team": value})
        assert RouteMatcher("team", "!~", pattern).matches({"team": value}) is not pos
    assert RouteMatcher("team", "!=", "db").matches({"team": value}) is not RouteMatcher(
        "team", "=", "db"
    ).matches({"team": value})


def test_route_matches_when_all_matchers_match() -> None:
    r = tree({"matchers": ['team=~"db|storage"', 'env!="dev"']})
    assert r.matches({"team": "db", "env": "prod"})
    assert r.matches({"team": "storage"})  # env missing is "", not "dev"
    assert not r.matches({"team": "db", "env": "dev"})
    assert not r.matches({"team": "web", "env": "prod"})
    assert tree({}).matches({})  # no matchers: matches everything


# ---------------------------------------------------------------- the tree


def test_root_delivers_when_no_child_matches() -> None:
    r = tree({"sinks": ["default"], "routes": [{"matchers": ['team="db"'], "sinks": ["db"]}]})
    assert sinks(r, {"team": "web"}) == ["default"]
    assert sinks(r, {}) == ["default"]


def test_first_matching_child_wins() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {"matchers": ['severity="critical"'], "sinks": ["pager"]},
                {"matchers": ['team="db"'], "sinks": ["db"]},
                {"matchers": ['team=~".+"'], "sinks": ["teams"]},
            ],
        }
    )
    assert sinks(r, {"severity": "critical", "team": "db"}) == ["pager"]
    assert sinks(r, {"severity": "warning", "team": "db"}) == ["db"]
    assert sinks(r, {"team": "web"}) == ["teams"]
    assert sinks(r, {"severity": "warning"}) == ["default"]


def test_continue_keeps_looking_at_later_siblings() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {"matchers": ['severity="critical"'], "sinks": ["pager"], "continue": True},
                {"matchers": ['team="db"'], "sinks": ["db"]},
                {"matchers": ['team=~".+"'], "sinks": ["teams"]},
            ],
        }
    )
    assert sinks(r, {"severity": "critical", "team": "db"}) == ["pager", "db"]  # db stops the walk
    assert sinks(r, {"severity": "critical", "team": "web"}) == ["pager", "teams"]
    assert sinks(r, {"team": "db"}) == ["db"]


def test_a_matched_continue_child_still_means_the_parent_does_not_deliver() -> None:
    # Alertmanager: the parent is the match only when *no* child matched, continue or not
    r = tree(
        {
            "sinks": ["default"],
            "routes": [{"matchers": ['severity="critical"'], "sinks": ["pager"], "continue": True}],
        }
    )
    assert sinks(r, {"severity": "critical"}) == ["pager"]
    assert sinks(r, {"severity": "warning"}) == ["default"]


def test_continue_on_the_last_matching_child_changes_nothing() -> None:
    base = {"sinks": ["default"], "routes": [{"matchers": ['team="db"'], "sinks": ["db"]}]}
    cont = {"sinks": ["default"], "routes": [{"matchers": ['team="db"'], "sinks": ["db"], "continue": True}]}
    for labels in ({"team": "db"}, {"team": "web"}, {}):
        assert route(tree(base), labels) == route(tree(cont), labels)


def test_all_siblings_with_continue_all_deliver_in_order() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {"matchers": ['a="1"'], "sinks": ["a"], "continue": True},
                {"matchers": ['b="1"'], "sinks": ["b"], "continue": True},
                {"matchers": ['c="1"'], "sinks": ["c"], "continue": True},
            ],
        }
    )
    assert sinks(r, {"a": "1", "b": "1", "c": "1"}) == ["a", "b", "c"]
    assert sinks(r, {"c": "1", "a": "1"}) == ["a", "c"]
    assert sinks(r, {}) == ["default"]


def test_deepest_match_wins() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "sinks": ["db"],
                    "routes": [
                        {"matchers": ['severity="critical"'], "sinks": ["db-pager"]},
                        {"matchers": ['env="dev"'], "sinks": ["db-dev"]},
                    ],
                },
                {"matchers": ['severity="critical"'], "sinks": ["pager"]},
            ],
        }
    )
    assert sinks(r, {"team": "db", "severity": "critical"}) == ["db-pager"]  # not pager: db matched first
    assert sinks(r, {"team": "db", "env": "dev"}) == ["db-dev"]
    assert sinks(r, {"team": "db"}) == ["db"]  # no grandchild matched: the child delivers
    assert sinks(r, {"severity": "critical"}) == ["pager"]


def test_continue_on_a_nested_route_only_affects_its_siblings() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "sinks": ["db"],
                    "routes": [
                        {"matchers": ['severity="critical"'], "sinks": ["db-pager"], "continue": True}
                    ],
                },
                {"matchers": ['severity="critical"'], "sinks": ["pager"]},
            ],
        }
    )
    # the grandchild's continue does not carry up: the db branch matched without continue
    assert sinks(r, {"team": "db", "severity": "critical"}) == ["db-pager"]


def test_a_continue_branch_collects_its_own_deepest_match() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "sinks": ["db"],
                    "continue": True,
                    "routes": [{"matchers": ['severity="critical"'], "sinks": ["db-pager"]}],
                },
                {"matchers": ['severity="critical"'], "sinks": ["pager"]},
            ],
        }
    )
    assert sinks(r, {"team": "db", "severity": "critical"}) == ["db-pager", "pager"]
    assert sinks(r, {"team": "db"}) == ["db"]


def test_a_child_that_does_not_match_hides_its_subtree() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [{"matchers": ['team="db"'], "sinks": ["db"], "routes": [{"sinks": ["catch-all"]}]}],
        }
    )
    assert sinks(r, {"team": "web"}) == ["default"]
    assert sinks(r, {"team": "db"}) == ["catch-all"]


def test_a_child_without_matchers_catches_everything_after_earlier_siblings() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {"matchers": ['team="db"'], "sinks": ["db"]},
                {"sinks": ["everything-else"]},
                {"matchers": ['team="web"'], "sinks": ["never"]},  # shadowed, as in Alertmanager
            ],
        }
    )
    assert sinks(r, {"team": "db"}) == ["db"]
    assert sinks(r, {"team": "web"}) == ["everything-else"]
    assert sinks(r, {}) == ["everything-else"]


def test_root_matchers_that_fail_deliver_nothing() -> None:
    r = tree({"matchers": ['env="prod"'], "sinks": ["default"]})
    assert sinks(r, {"env": "prod"}) == ["default"]
    assert route(r, {"env": "dev"}) == []


def test_an_empty_sink_list_is_a_blackhole() -> None:
    # sinks: [] is set (not inherited): the route matches, stops its siblings, and delivers nowhere
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {"matchers": ['env="dev"'], "sinks": []},
                {"matchers": ['severity="critical"'], "sinks": ["pager"]},
            ],
        }
    )
    assert route(r, {"env": "dev", "severity": "critical"}) == []
    assert sinks(r, {"severity": "critical"}) == ["pager"]


def test_a_root_without_sinks_delivers_nothing_when_no_child_matches() -> None:
    r = tree({"routes": [{"matchers": ['team="db"'], "sinks": ["db"]}]})
    assert sinks(r, {"team": "db"}) == ["db"]
    assert route(r, {"team": "web"}) == []


def test_no_routes_and_no_sinks() -> None:
    assert route(tree({}), {"a": "b"}) == []


# ---------------------------------------------------------------- inheritance


def test_children_inherit_sinks() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {
                    "matchers": ['team="db"'],  # no sinks: the parent's
                    "routes": [
                        {"matchers": ['severity="critical"'], "sinks": ["pager"]},
                        {"matchers": ['env="dev"']},  # no sinks: the nearest ancestor's
                    ],
                }
            ],
        }
    )
    assert sinks(r, {"team": "db"}) == ["default"]
    assert sinks(r, {"team": "db", "env": "dev"}) == ["default"]
    assert sinks(r, {"team": "db", "severity": "critical"}) == ["pager"]


def test_inherited_sinks_come_from_the_nearest_ancestor_with_sinks() -> None:
    r = tree(
        {
            "sinks": ["root"],
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "sinks": ["db"],
                    "routes": [{"matchers": ['env="prod"'], "routes": [{"matchers": ['tier="1"']}]}],
                }
            ],
        }
    )
    assert sinks(r, {"team": "db", "env": "prod", "tier": "1"}) == ["db"]
    assert sinks(r, {"team": "db", "env": "prod"}) == ["db"]


def test_send_resolved_defaults_to_true_and_is_inherited() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "sinks": ["db"],
                    "send_resolved": False,
                    "routes": [
                        {"matchers": ['severity="critical"'], "sinks": ["db-pager"]},  # inherits False
                        {"matchers": ['env="prod"'], "sinks": ["db-prod"], "send_resolved": True},
                    ],
                },
                {"matchers": ['team="web"'], "sinks": ["web"]},  # the root's default: True
            ],
        }
    )
    assert resolved(r, {}) == {"default": True}
    assert resolved(r, {"team": "web"}) == {"web": True}
    assert resolved(r, {"team": "db"}) == {"db": False}
    assert resolved(r, {"team": "db", "severity": "critical"}) == {"db-pager": False}
    assert resolved(r, {"team": "db", "env": "prod"}) == {"db-prod": True}


def test_root_send_resolved_false_is_inherited() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "send_resolved": False,
            "routes": [
                {"matchers": ['team="db"'], "sinks": ["db"]},
                {"matchers": ['team="web"'], "sinks": ["web"], "send_resolved": True},
            ],
        }
    )
    assert resolved(r, {}) == {"default": False}
    assert resolved(r, {"team": "db"}) == {"db": False}
    assert resolved(r, {"team": "web"}) == {"web": True}


def test_inheriting_sinks_keeps_the_childs_send_resolved() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [{"matchers": ['team="db"'], "send_resolved": False}],
        }
    )
    assert route(r, {"team": "db"}) == [Target("default", False)]
    assert route(r, {}) == [Target("default", True)]


def test_send_updates_defaults_to_true_and_is_inherited_independently() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {
                    "matchers": ['team="db"'],
                    "sinks": ["db"],
                    "send_updates": False,
                    "routes": [
                        {"matchers": ['severity="critical"'], "sinks": ["db-pager"]},
                        {"matchers": ['env="prod"'], "sinks": ["db-prod"], "send_updates": True},
                    ],
                },
                {"matchers": ['team="web"'], "sinks": ["web"], "send_resolved": False},
            ],
        }
    )
    assert route(r, {}) == [Target("default", send_resolved=True, send_updates=True)]
    assert route(r, {"team": "db"}) == [Target("db", send_resolved=True, send_updates=False)]
    assert route(r, {"team": "db", "severity": "critical"}) == [Target("db-pager", True, False)]
    assert route(r, {"team": "db", "env": "prod"}) == [Target("db-prod", True, True)]
    assert route(r, {"team": "web"}) == [Target("web", send_resolved=False, send_updates=True)]
    quiet = tree({"sinks": ["a"], "send_updates": False, "routes": [{"matchers": ['x="1"'], "sinks": ["b"]}]})
    assert route(quiet, {"x": "1"}) == [Target("b", True, False)]


def test_each_sink_once_in_route_order() -> None:
    r = tree(
        {
            "sinks": ["default"],
            "routes": [
                {"matchers": ['severity="critical"'], "sinks": ["pager", "chat"], "continue": True},
                {"matchers": ['team="db"'], "sinks": ["chat", "db", "pager"]},
            ],
        }
    )
    assert sinks(r, {"severity": "critical", "team": "db"}) == ["pager", "chat", "db"]
    assert sinks(tree({"sinks": ["a", "b", "a"]}), {}) == ["a", "b"]


# ---------------------------------------------------------------- the model


def test_route_refuses_unknown_keys_and_bad_types() -> None:
    with pytest.raises(ValidationError) as err:
        tree({"receiver": "x"})  # Alertmanager's word; ours is sinks
    assert err.value.errors()[0]["loc"] == ("receiver",)
    with pytest.raises(ValidationError) as err:
        tree({"matchers": 'severity="critical"'})  # a string, not a list
    assert err.value.errors()[0]["loc"] == ("matchers",)
    with pytest.raises(ValidationError) as err:
        tree({"routes": [{"match": {"severity": "critical"}}]})  # Alertmanager's deprecated form
    assert err.value.errors()[0]["loc"] == ("routes", 0, "match")


def test_bad_matcher_in_a_nested_route_is_named_by_its_path() -> None:
    with pytest.raises(ValidationError) as err:
        tree({"routes": [{"routes": [{}, {"matchers": ['a="1"', 'b=~"("']}]}]})
    (e,) = err.value.errors()
    assert e["loc"] == ("routes", 0, "routes", 1, "matchers")
    assert "bad regex" in e["msg"] and "b=~" in e["msg"]


def test_matchers_given_as_mappings_are_checked_too() -> None:
    ok = tree({"matchers": [{"name": "team", "op": "=~", "value": "db|net"}]})
    assert ok.matches({"team": "net"}) and not ok.matches({"team": "network"})
    with pytest.raises(ValidationError) as err:
        tree({"matchers": [{"name": "team", "op": "=~", "value": "("}]})
    assert err.value.errors()[0]["loc"] == ("matchers", 0)
    assert "bad regex" in err.value.errors()[0]["msg"]
    with pytest.raises(ValidationError):
        tree({"matchers": [{"name": "team", "op": "==", "value": "db"}]})


def test_continue_is_read_from_its_yaml_name() -> None:
    assert tree({"continue": True}).continue_ is True
    assert tree({}).continue_ is False


def test_matcher_str() -> None:
    assert str(RouteMatcher.parse("severity=critical")) == 'severity="critical"'
    assert str(RouteMatcher.parse("team=~db|net")) == 'team=~"db|net"'


@pytest.mark.parametrize(
    ("regex", "value", "hit"),
    [
        ("(?i)db", "DB", True),  # a leading flag group, as Go's RE2 allows inside ^(?:...)$
        ("(?i)db|net", "NET", True),
        ("(?i)db", "DBA", False),
        ("(?s)a.b", "a\nb", True),
        ("a.b", "a\nb", False),
        ("a|ab", "ab", True),  # anchoring backtracks into later alternatives
        ("", "", True),
        ("", "x", False),
    ],
)
def test_regexes_that_parse_never_fail_when_matching(regex: str, value: str, hit: bool) -> None:
    m = RouteMatcher.parse(f'x=~"{regex}"')
    assert m.matches({"x": value}) is hit
    assert RouteMatcher.parse(f'x!~"{regex}"').matches({"x": value}) is not hit


def test_unbalanced_groups_are_refused_not_smuggled_through_the_anchoring() -> None:
    # "a)|(b" would compile inside (?:...) but is not a regex on its own
    with pytest.raises(ValueError, match="bad regex"):
        RouteMatcher.parse('x=~"a)|(b"')
