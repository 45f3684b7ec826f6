"""Which series make a max/min alert's value: the pure core on small hand-made leaves."""

from __future__ import annotations

from tools.analysis import Leaf
from tools.extremes import extreme_leaves, localize_extreme
from tools.prom import Series


def _fs(instance: str, mount: str, device: str, base: float, inc: float) -> Leaf:
    labels = (("device", device), ("fstype", "ext4"), ("instance", instance), ("mountpoint", mount))
    return Leaf(labels, base, inc)


FILESYSTEMS = [
    _fs("db-1", "/", "sda1", 0.40, 0.41),
    _fs("db-1", "/data", "sdb1", 0.55, 0.56),
    _fs("db-2", "/", "sda1", 0.30, 0.30),
    _fs("db-2", "/data", "sdb1", 0.36, 0.95),  # fills
    _fs("db-3", "/", "sda1", 0.50, 0.50),
    _fs("db-3", "/data", "sdb1", 0.70, 0.71),
]


def test_the_crossing_series_by_the_fewest_labels_that_hold_it_alone() -> None:
    loc = localize_extreme(FILESYSTEMS, high=True, op=">", threshold=0.9)
    assert loc.localized
    assert [dict(c.labels) for c in loc.causes] == [{"instance": "db-2", "mountpoint": "/data"}]
    cause = loc.causes[0]
    assert (cause.baseline, cause.incident, cause.explained_share) == (0.36, 0.95, 1.0)


def test_several_crossing_series_sharing_a_label_make_one_element() -> None:
    pools = [
        Leaf((("instance", f"i{i}"), ("pool", pool)), 0.5, 0.97 if pool == "search" else 0.5)
        for i, pool in enumerate(["search", "search", "web", "web", "search", "batch"])
    ]
    loc = localize_extreme(pools, high=True, op=">", threshold=0.9)
    assert [dict(c.labels) for c in loc.causes] == [{"pool": "search"}]


def test_without_a_threshold_the_series_at_the_extreme() -> None:
    memory = [Leaf((("instance", f"n{i}"),), 0.5, v) for i, v in enumerate([0.6, 0.03, 0.5])]
    loc = localize_extreme(memory, high=False)
    assert [dict(c.labels) for c in loc.causes] == [{"instance": "n1"}]


def test_a_condition_every_series_meets_is_not_localized() -> None:
    down = [Leaf((("instance", f"i{i}"),), 1.0, 0.0) for i in range(3)]
    loc = localize_extreme(down, high=True, op="<", threshold=1)
    assert not loc.localized and "every one of the 3 series" in loc.notes[0]
    spread = [Leaf((("instance", f"i{i}"),), 0.5, 0.95) for i in range(3)]
    loc = localize_extreme(spread, high=True, op=">", threshold=0.9)
    assert not loc.localized and "spread" in loc.notes[0]


def test_extreme_leaves_take_each_window_extreme() -> None:
    s = Series({"instance": "a", "job": "x"}, (0.0, 10.0, 20.0, 30.0), (0.2, 0.4, 0.5, 0.9))
    (leaf,) = extreme_leaves([s], ["instance"], (0.0, 15.0), (20.0, 30.0), high=True)
    assert leaf.labels == (("instance", "a"),) and (leaf.base_num, leaf.inc_num) == (0.4, 0.9)
    (low,) = extreme_leaves([s], ["instance"], (0.0, 15.0), (20.0, 30.0), high=False)
    assert (low.base_num, low.inc_num) == (0.2, 0.5)
