"""Search pages after a keyset: continuing a ranking where the last page stopped.

A page is followed by a ``Keyset``: the index's value (``raw``, in Milvus's terms: similarity
for COSINE and IP, squared distance for L2) of the last hit shown, and the ids shown within
``tolerance`` of it (``seen``). The next page is the best hits ranked no better than ``raw`` and
not in ``seen``, so no hit is shown twice however many share a score, and a value the index
computes one float32 step apart on the next call neither repeats nor skips a hit.

How the index is asked (``search_after``):

- **Deeper top-k** (every backend while the hits shown plus the page are within ``topk_depth``;
  always on Milvus Lite, whose range search only filters its top ``ef`` hits, so it finds nothing
  past the first few hundred): the index is asked for the ``depth`` hits shown so far plus the
  page, and the keyset drops the shown ones. Page n costs a top-k of n pages; it reaches
  ``WINDOW`` hits deep (Milvus's top-k limit), past which the page comes back short.
- **Range search** (``Capabilities.range_search``: Milvus servers, past ``topk_depth``): the
  keyset becomes the upper bound of a range search (``range_filter``), so page n asks for about
  ``topK`` hits however deep it is. On Milvus 2.3 a range search with an open lower bound costs
  several times a top-k of a thousand (docs/measurements.md, search pages), hence the top-k first.

Either way a page whose window held too few new hits (ties, hits added above the keyset since)
asks again with twice the window, up to ``WINDOW``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from store.index import VectorHit, VectorIndex
from store.records import CollectionInfo, Consistency, Metric

# Milvus's largest top-k (limit + offset): the deepest window one search can ask for.
WINDOW = 16_384
# How deep (hits shown + the page) a Milvus server is still paged by a top-k rather than a range
# search: a top-k of that many costs less than the range search (docs/measurements.md).
TOPK_DEPTH = 2_048
# Ids kept in a keyset's ``seen``: a longer run of hits at one score is continued by rank alone.
MAX_SEEN = 256
# The range search's open end: past every score (COSINE, IP) or distance (L2) there is.
FAR = 1e30


@dataclass(frozen=True, slots=True)
class Keyset:
    raw: float  # the index's value of the last hit shown
    seen: tuple[str, ...]  # ids shown within ``tolerance(raw)`` of it
    depth: int  # hits shown so far, on every page


def tolerance(raw: float) -> float:
    """Two values this close are taken for one score: float32 carries about 7 digits."""
    return 1e-6 * max(1.0, abs(raw))


def raw_value(metric: Metric, score: float, distance: float) -> float:
    """The index's value back from a hit's (score, distance) (store.search.score)."""
    return distance * distance if metric is Metric.L2 else score


def goodness(metric: Metric, raw: float) -> float:
    """Higher is better for every metric (L2's raw value is a distance)."""
    return -raw if metric is Metric.L2 else raw


def ranked(metric: Metric, hits: Sequence[VectorHit]) -> list[VectorHit]:
    """Best first; ties by id, so a page's order does not depend on the index's."""
    return sorted(hits, key=lambda h: (-goodness(metric, h.distance), h.id))


def continue_after(metric: Metric, hits: Sequence[VectorHit], keyset: Keyset) -> list[VectorHit]:
    """The hits that come after ``keyset``, best first."""
    bound = goodness(metric, keyset.raw) + tolerance(keyset.raw)
    seen = set(keyset.seen)
    kept = [h for h in hits if goodness(metric, h.distance) <= bound and h.id not in seen]
    return ranked(metric, kept)


class _Scored(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def score(self) -> float: ...


S = TypeVar("S", bound=_Scored)


def continue_by_score(hits: Sequence[S], keyset: Keyset) -> list[S]:
    """``continue_after`` for rankings by score alone (keyword and hybrid searches: the keyset's
    value is the score), best first."""
    bound = keyset.raw + tolerance(keyset.raw)
    seen = set(keyset.seen)
    kept = [h for h in hits if h.score <= bound and h.id not in seen]
    return sorted(kept, key=lambda h: (-h.score, h.id))


def next_keyset(page: Sequence[tuple[str, float]], previous: Keyset | None) -> Keyset:
    """The keyset after ``page``: (id, raw value) of its hits, best first, not empty; it
    followed ``previous``."""
    last = page[-1][1]
    near = [id for id, raw in page if abs(raw - last) <= tolerance(last)]
    if previous is not None and abs(previous.raw - last) <= tolerance(last):
        near = list(previous.seen) + near
    depth = len(page) + (previous.depth if previous else 0)
    return Keyset(raw=last, seen=tuple(near[-MAX_SEEN:]), depth=depth)


def range_after(metric: Metric, keyset: Keyset, params: dict[str, Any]) -> dict[str, Any]:
    """Milvus search params bounded by the keyset (a client's own range is kept inside it)."""
    out = dict(params)
    tol = tolerance(keyset.raw)
    if metric is Metric.L2:
        # radius: the largest squared distance kept (exclusive); range_filter: the smallest.
        out.setdefault("radius", FAR)
        out["range_filter"] = max(out.get("range_filter", 0.0), max(0.0, keyset.raw - tol))
    else:
        # radius: the lowest similarity kept (exclusive); range_filter: the highest.
        out.setdefault("radius", -1.0 if metric is Metric.COSINE else -FAR)
        out["range_filter"] = min(out.get("range_filter", FAR), keyset.raw + tol)
    return out


async def search_after(
    index: VectorIndex,
    info: CollectionInfo,
    vector: np.ndarray,
    *,
    keyset: Keyset,
    top_k: int,
    expr: str,
    params: dict[str, Any],
    consistency: Consistency,
    range_search: bool,
    topk_depth: int = TOPK_DEPTH,
) -> tuple[list[VectorHit], bool]:
    """The ``top_k`` best hits after ``keyset``, and whether the index could give no more
    (``short``: the window reached ``WINDOW`` before the page filled). ``range_search``: the
    index can range-search (used past ``topk_depth`` hits deep)."""
    # The index finds a few hits this time that it missed on an earlier page (approximate):
    # they rank above the keyset, so the window holds a little more than the page to spare a
    # second search.
    depth = keyset.depth + top_k + 1 + keyset.depth // 32
    if not range_search or depth <= topk_depth:
        asked = dict(params)
        if range_search and "ef" in asked:
            # A Milvus server's HNSW with ef barely above a deep top-k misses many of the best
            # hits under a filter (recall 0.8 at 551 of 3,000 matching rows): give it twice.
            asked["ef"] = max(asked["ef"], min(2 * depth, 2 * WINDOW))
        page, short = await _window(
            index, info, vector, keyset, top_k, expr, asked, consistency, depth
        )
        if not short or not range_search:
            return page, short
        # The top-k filled with hits above the keyset (written since): the range search skips them.
    asked = range_after(info.metric, keyset, params)
    window = top_k + len(keyset.seen) + 1
    return await _window(index, info, vector, keyset, top_k, expr, asked, consistency, window)


async def _window(
    index: VectorIndex,
    info: CollectionInfo,
    vector: np.ndarray,
    keyset: Keyset,
    top_k: int,
    expr: str,
    asked: dict[str, Any],
    consistency: Consistency,
    window: int,
) -> tuple[list[VectorHit], bool]:
    """Ask the index for ``window`` hits with ``asked`` and keep those after the keyset; a window
    that held too few new hits (ties, hits added above the keyset) is asked again twice as wide,
    up to ``WINDOW``."""
    window = min(window, WINDOW)
    while True:
        if "ef" in asked:  # HNSW refuses a top-k above ef
            asked["ef"] = max(asked["ef"], window)
        [raw] = await index.search(
            info, [vector], limit=window, expr=expr, params=asked, consistency=consistency
        )
        kept = continue_after(info.metric, raw, keyset)
        if len(kept) >= top_k or len(raw) < window:
            return kept[:top_k], False
        if window >= WINDOW:
            return kept[:top_k], True
        window = min(WINDOW, window * 2)
