"""Fusing the two sides of a hybrid search: the vector side's hits and the keyword side's, each
ranked best first, into one list.

- ``RRF`` (reciprocal rank fusion): ``alpha / (RRF_K + vector rank) + (1 - alpha) / (RRF_K +
  keyword rank)``, ranks from 1, a side that did not find the row adding nothing. Rank-based, so
  the two sides' score scales never matter.
- ``RELATIVE_SCORE``: each side's scores min-max normalised over that side's candidates (the best
  is 1, the worst 0; one candidate, or all equal, is 1), then ``alpha * vector + (1 - alpha) *
  keyword``, a missing side counting 0.

``alpha`` is the vector side's weight: 1 is pure vector search, 0 pure keyword search. A side
whose weight is 0 brings no candidates of its own, so ``alpha = 1`` returns exactly the vector
search's hits in its order and ``alpha = 0`` exactly the keyword search's. Ties are broken by the
heavier side's rank, then the other's, then id.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass


class Fusion(enum.StrEnum):
    RRF = "RRF"
    RELATIVE_SCORE = "RELATIVE_SCORE"


# RRF's constant, as in the paper (Cormack et al. 2009) and in Milvus, Weaviate and Qdrant.
RRF_K = 60


@dataclass(frozen=True, slots=True)
class HitScores:
    """Each side's score and rank (from 1) for one hit; None where that side did not find it."""

    vector: float | None = None
    keyword: float | None = None
    vector_rank: int | None = None
    keyword_rank: int | None = None


@dataclass(frozen=True, slots=True)
class Ranked:
    """One side's hit: its id and that side's score (higher is better)."""

    id: str
    score: float


@dataclass(frozen=True, slots=True)
class Fused:
    id: str
    score: float
    scores: HitScores


def fuse(
    vector: Sequence[Ranked],
    keyword: Sequence[Ranked],
    *,
    alpha: float,
    fusion: Fusion,
) -> list[Fused]:
    """Every candidate of the sides that weigh something, best first."""
    if not 0.0 <= alpha <= 1.0 or math.isnan(alpha):
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    sides = {"vector": (vector if alpha > 0 else []), "keyword": (keyword if alpha < 1 else [])}
    weights = {"vector": alpha, "keyword": 1.0 - alpha}
    ranks: dict[str, dict[str, int]] = {name: {} for name in sides}
    raw: dict[str, dict[str, float]] = {name: {} for name in sides}
    for name, hits in sides.items():
        for rank, h in enumerate(hits, start=1):
            if h.id not in ranks[name]:  # a row found twice by one side counts once, first
                ranks[name][h.id] = rank
                raw[name][h.id] = h.score
    ids = list(dict.fromkeys([*ranks["vector"], *ranks["keyword"]]))
    contribution = {
        name: (
            {i: 1.0 / (RRF_K + r) for i, r in ranks[name].items()}
            if fusion is Fusion.RRF
            else _normalised(raw[name])
        )
        for name in sides
    }
    heavier, lighter = ("vector", "keyword") if alpha >= 0.5 else ("keyword", "vector")
    out = [
        Fused(
            id=i,
            score=sum(weights[n] * contribution[n].get(i, 0.0) for n in sides),
            scores=HitScores(
                vector=raw["vector"].get(i),
                keyword=raw["keyword"].get(i),
                vector_rank=ranks["vector"].get(i),
                keyword_rank=ranks["keyword"].get(i),
            ),
        )
        for i in ids
    ]
    unranked = math.inf
    out.sort(
        key=lambda f: (
            -f.score,
            ranks[heavier].get(f.id, unranked),
            ranks[lighter].get(f.id, unranked),
            f.id,
        )
    )
    return out


def _normalised(scores: dict[str, float]) -> dict[str, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high == low:
        return dict.fromkeys(scores, 1.0)
    return {i: (s - low) / (high - low) for i, s in scores.items()}
