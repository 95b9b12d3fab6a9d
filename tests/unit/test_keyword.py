"""The keyword analyzer and the fusion of hybrid search (no I/O)."""

from __future__ import annotations

import pytest

from store.analyzer import MAX_TERM, terms
from store.fusion import RRF_K, Fusion, Ranked, fuse


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("libssl-dev: Secure toolkit", ["libssl", "dev", "libssl-dev", "secure", "toolkit"]),
        ("python3-requests", ["python3", "requests", "python3-requests"]),
        (
            "g++ and libstdc++-12-dev",
            ["g", "g++", "and", "libstdc", "12", "dev", "libstdc++-12-dev"],
        ),
        ("end of sentence. -dash- __x__", ["end", "of", "sentence", "dash", "x"]),
        ("a_b.c", ["a", "b", "c", "a_b.c"]),
        ("Straße ÉCOLE ﬁne", ["strasse", "école", "fine"]),  # NFKC, then casefold
        ("日本語 テキスト", ["日本語", "テキスト"]),
        ("", []),
        ("?!- ...", []),
    ],
)
def test_analyzer_terms(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


def test_overlong_terms_are_dropped() -> None:
    assert terms("x" * (MAX_TERM + 1) + " kept") == ["kept"]
    assert terms("a-" + "b" * MAX_TERM) == ["a", "b" * MAX_TERM]  # the parts fit, not the whole


V = [Ranked("a", 0.9), Ranked("b", 0.8), Ranked("c", 0.1)]
K = [Ranked("c", 12.0), Ranked("d", 6.0), Ranked("a", 3.0)]


@pytest.mark.parametrize("fusion", list(Fusion))
def test_alpha_ends_are_the_single_sides(fusion: Fusion) -> None:
    assert [f.id for f in fuse(V, K, alpha=1.0, fusion=fusion)] == ["a", "b", "c"]
    assert [f.id for f in fuse(V, K, alpha=0.0, fusion=fusion)] == ["c", "d", "a"]


def test_rrf_weights_ranks() -> None:
    fused = {f.id: f for f in fuse(V, K, alpha=0.5, fusion=Fusion.RRF)}
    assert fused["a"].score == pytest.approx(0.5 / (RRF_K + 1) + 0.5 / (RRF_K + 3))
    assert fused["d"].score == pytest.approx(0.5 / (RRF_K + 2))
    assert fused["c"].scores.vector_rank == 3
    assert fused["c"].scores.keyword_rank == 1
    assert fused["d"].scores.vector is None
    assert fused["d"].scores.keyword == 6.0


def test_relative_score_normalises_each_side() -> None:
    fused = {f.id: f.score for f in fuse(V, K, alpha=0.25, fusion=Fusion.RELATIVE_SCORE)}
    assert fused["a"] == pytest.approx(0.25 * 1.0 + 0.75 * 0.0)
    assert fused["c"] == pytest.approx(0.25 * 0.0 + 0.75 * 1.0)
    assert fused["d"] == pytest.approx(0.75 * (6.0 - 3.0) / (12.0 - 3.0))
    single = fuse([Ranked("x", 0.3)], [], alpha=0.5, fusion=Fusion.RELATIVE_SCORE)
    assert single[0].score == pytest.approx(0.5)  # one candidate normalises to 1


def test_ties_go_to_the_heavier_side() -> None:
    v = [Ranked("a", 1.0), Ranked("b", 0.5)]
    k = [Ranked("b", 2.0), Ranked("a", 1.0)]
    assert [f.id for f in fuse(v, k, alpha=0.5, fusion=Fusion.RRF)] == ["a", "b"]
    assert [f.id for f in fuse(v, k, alpha=0.4, fusion=Fusion.RRF)] == ["b", "a"]


@pytest.mark.parametrize("alpha", [-0.1, 1.1, float("nan")])
def test_alpha_out_of_range(alpha: float) -> None:
    with pytest.raises(ValueError, match="alpha"):
        fuse(V, K, alpha=alpha, fusion=Fusion.RRF)
