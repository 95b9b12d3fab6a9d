"""Keysets and grouping (store.paging, store.grouping): pure functions, no I/O."""

from __future__ import annotations

from store.grouping import group_hits
from store.index import VectorHit
from store.paging import Keyset, continue_after, next_keyset, range_after
from store.records import Metric
from store.search import ScoredHit


def test_a_keyset_skips_every_hit_shown_at_its_score() -> None:
    hits = [VectorHit("a", 0.9), VectorHit("b", 0.5), VectorHit("c", 0.5), VectorHit("d", 0.4)]
    first = next_keyset([("a", 0.9), ("c", 0.5)], None)  # a page that cut a tie at 0.5
    assert first == Keyset(raw=0.5, seen=("c",), depth=2)
    assert [h.id for h in continue_after(Metric.COSINE, hits, first)] == ["b", "d"]
    # The next page ends on the same score: both ids are kept.
    second = next_keyset([("b", 0.5)], first)
    assert second.seen == ("c", "b")
    assert second.depth == 3
    assert [h.id for h in continue_after(Metric.COSINE, hits, second)] == ["d"]


def test_a_value_one_float32_step_away_is_the_same_score() -> None:
    keyset = Keyset(raw=0.5, seen=("b",), depth=1)
    again = [VectorHit("b", 0.50000003), VectorHit("c", 0.49999997)]
    assert [h.id for h in continue_after(Metric.COSINE, again, keyset)] == ["c"]


def test_l2_keysets_run_towards_larger_distances() -> None:
    hits = [VectorHit("a", 1.0), VectorHit("b", 4.0), VectorHit("c", 9.0)]
    keyset = next_keyset([("a", 1.0), ("b", 4.0)], None)
    assert [h.id for h in continue_after(Metric.L2, hits, keyset)] == ["c"]
    bounds = range_after(Metric.L2, keyset, {"ef": 64})
    assert bounds["ef"] == 64
    assert 3.99 < bounds["range_filter"] <= 4.0
    assert bounds["radius"] > 1e20


def test_a_clients_own_range_is_kept_inside_the_keyset() -> None:
    keyset = Keyset(raw=0.8, seen=(), depth=10)
    assert range_after(Metric.COSINE, keyset, {"radius": 0.2, "range_filter": 0.5}) == {
        "radius": 0.2,
        "range_filter": 0.5,
    }
    own = range_after(Metric.COSINE, keyset, {"radius": 0.2, "range_filter": 0.95})
    assert 0.8 <= own["range_filter"] < 0.8001
    assert range_after(Metric.IP, keyset, {})["radius"] < -1e20


def test_groups_take_the_best_hits_of_each_value_in_order() -> None:
    hits = [ScoredHit(i, s, 1 - s) for i, s in (("a", 0.9), ("b", 0.8), ("c", 0.7), ("d", 0.6))]
    values = {"a": "x", "b": "x", "c": None, "d": "y"}
    groups, full = group_hits(hits, values, groups=2, size=2)
    assert [(g.value, [h.id for h in g.hits]) for g in groups] == [("x", ["a", "b"]), (None, ["c"])]
    assert not full  # the null group could have a second hit further down
    groups, full = group_hits(hits, values, groups=3, size=1)
    assert [g.value for g in groups] == ["x", None, "y"]
    assert full
    # A hit whose record is gone from SQL (no value read) is left out.
    groups, _ = group_hits(hits, {"b": "x", "d": "y"}, groups=2, size=1)
    assert [h.id for g in groups for h in g.hits] == ["b", "d"]
