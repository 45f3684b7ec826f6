"""The localization core on small synthetic arrays, including the traps the issue names."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tools.analysis import Leaf, choose_step, compare_windows, label_key, localize

REGIONS = {"beijing": 0.3, "shanghai": 0.25, "guangzhou": 0.2, "shenzhen": 0.15, "hangzhou": 0.1}
USERS = {"normal": (0.9, 0.03), "admin": (0.1, 0.05)}

Fault = Callable[[str, str, float, float], tuple[float, float]]


def cube(fault: Fault, seed: int = 1) -> list[Leaf]:
    """Login leaves: total (den) and failures (num) per region and user type, with mild noise."""
    rnd = random.Random(seed)
    out = []
    for region, rw in REGIONS.items():
        for user, (uw, ratio) in USERS.items():
            den = 100 * rw * uw
            inc_den, inc_num = fault(
                region, user, den * rnd.uniform(0.97, 1.03), den * ratio * rnd.uniform(0.9, 1.1)
            )
            out.append(
                Leaf(label_key({"ip_region": region, "user_type": user}), den * ratio, inc_num, den, inc_den)
            )
    return out


def causes(result) -> list[dict[str, str]]:  # type: ignore[no-untyped-def]
    return [dict(c.labels) for c in result.causes]


def test_two_label_cause_with_volume_burst() -> None:
    def fault(r: str, u: str, d: float, n: float) -> tuple[float, float]:
        return (d + 30, n + 28) if (r, u) == ("shanghai", "admin") else (d, n)

    res = localize(cube(fault), ratio=True)
    assert res.localized
    assert causes(res) == [{"ip_region": "shanghai", "user_type": "admin"}]
    assert res.causes[0].explained_share > 0.9


def test_whole_region_is_not_over_specialised() -> None:
    res = localize(cube(lambda r, u, d, n: (d, d * 0.6) if r == "shanghai" else (d, n)), ratio=True)
    assert causes(res) == [{"ip_region": "shanghai"}]


def test_large_stable_segment_does_not_beat_small_changed_one() -> None:
    # beijing/normal is the largest segment and only drifts by noise; hangzhou/admin is tiny but broken.
    res = localize(
        cube(lambda r, u, d, n: (d, d * 0.9) if (r, u) == ("hangzhou", "admin") else (d, n)), ratio=True
    )
    assert causes(res)[0] == {"ip_region": "hangzhou", "user_type": "admin"}


def test_even_change_is_not_localized() -> None:
    res = localize(cube(lambda r, u, d, n: (d, n * 6)), ratio=True)
    assert not res.localized
    assert res.causes == []
    assert any("spread" in n for n in res.notes)


def test_two_simultaneous_causes() -> None:
    def fault(r: str, u: str, d: float, n: float) -> tuple[float, float]:
        if r == "beijing" or (r, u) == ("guangzhou", "normal"):
            return d, d * 0.5
        return d, n

    res = localize(cube(fault), ratio=True)
    found = causes(res)
    assert {"ip_region": "beijing"} in found
    assert {"ip_region": "guangzhou", "user_type": "normal"} in found


def test_cause_holding_most_of_the_volume() -> None:
    # normal users are 90% of the volume: a common trend taken over all leaves would be theirs, and the
    # admins would look like the anomaly. Compared with what the admins did, normal users broke.
    res = localize(cube(lambda r, u, d, n: (d, d * 0.4) if u == "normal" else (d, n)), ratio=True)
    assert res.localized
    assert causes(res) == [{"user_type": "normal"}]


def test_second_cause_searched_while_the_rest_is_anomalous() -> None:
    # beijing (30%) and guangzhou (20%) both break: the first cause explains most of the change,
    # but what remains is not normal, so the search goes on instead of calling it spread.
    def fault(r: str, u: str, d: float, n: float) -> tuple[float, float]:
        return (d, d * {"beijing": 0.7, "guangzhou": 0.5}.get(r, n / d))

    res = localize(cube(fault), ratio=True)
    assert res.localized
    assert causes(res) == [{"ip_region": "beijing"}, {"ip_region": "guangzhou"}]


def test_additive_drop_localizes() -> None:
    leaves = [
        Leaf(
            leaf.labels,
            leaf.base_den,
            leaf.inc_den * (0.05 if dict(leaf.labels)["ip_region"] == "shenzhen" else 1.0),
        )
        for leaf in cube(lambda r, u, d, n: (d, n))
    ]
    res = localize(leaves, ratio=False)
    assert causes(res) == [{"ip_region": "shenzhen"}]


def test_no_change_and_no_data() -> None:
    flat = [Leaf(label_key({"a": str(i)}), 1.0, 1.0, 10.0, 10.0) for i in range(3)]
    assert not localize(flat, ratio=True).localized
    assert not localize([], ratio=True).localized


def test_unicode_label_values() -> None:
    leaves = [
        Leaf(label_key({"isp": isp}), 1.0, 9.0 if isp == "电信" else 1.0, 10.0, 10.0)
        for isp in ("电信", "联通", "移动")
    ]
    assert causes(localize(leaves, ratio=True)) == [{"isp": "电信"}]


@pytest.mark.parametrize(("seconds", "points", "step"), [(60, 300, 1), (3900, 300, 15), (86400, 300, 300)])
def test_choose_step(seconds: float, points: int, step: float) -> None:
    assert choose_step(seconds, points) == step
    assert seconds / choose_step(seconds, points) < points


def test_compare_windows() -> None:
    ts = [0, 10, 20, 30, 40]
    vals = [1.0, 1.0, float("nan"), 5.0, 3.0]
    st = compare_windows(ts, vals, (0, 15), (25, 40))
    assert st.baseline == 1.0 and st.incident == 4.0 and st.peak == 5.0


def test_a_label_implied_by_another_does_not_stop_the_specialisation() -> None:
    # every route belongs to one service: {route, service} covers the same leaves as {route}. Healthy
    # leaves fail a little less during the incident, so that child explains marginally more than the
    # true {route="/pay", version="v2"}; it must not end the specialisation at {route="/pay"}.
    rnd = random.Random(0)
    routes = (("/pay", "checkout"), ("/cart", "checkout"), ("/search", "catalog"), ("/items", "catalog"))
    leaves = []
    for route, service in (*routes, ("/user", "account")):
        for version in ("v1", "v2"):
            den = 100 * rnd.uniform(0.9, 1.1)
            broken = (route, version) == ("/pay", "v2")
            inc = den * (0.5 if broken else 0.01 * rnd.uniform(0.85, 1.0))
            labels = label_key({"route": route, "service": service, "version": version})
            leaves.append(Leaf(labels, den * 0.01, inc, den, den))
    res = localize(leaves, ratio=True)
    assert causes(res) == [{"route": "/pay", "version": "v2"}]
