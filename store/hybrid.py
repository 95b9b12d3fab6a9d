"""Keyword and hybrid search (issue 22): BM25 over record text (``store.sql.bm25``), alone or
fused with vector search (``store.fusion``).

Both sides of a hybrid search see the same rows: the vector side is the ordinary vector search
(``store.search.Searcher``: filter and tenant in Milvus, or the exact route) and the keyword
side applies the same filter and tenant in its SQL statement, before fusion. Each side fetches
a pool of ``max(HYBRID_POOL, 2 * (topK + offset))`` candidates (HNSW's ``ef`` is raised to the
pool when smaller), so a row that ranks well on one side only can still make the page; the two
sides run concurrently, and a batch's vector sides share one Milvus call.

Scores: a keyword hit's ``score`` is its BM25 score, a hybrid hit's the fused score;
``distance`` is ``-score`` for both (lower is better, as for IP). ``scores`` holds each side's
score and rank.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from store.filters import Filter
from store.fusion import Fused, Fusion, HitScores, Ranked, fuse
from store.records import CollectionInfo, Consistency
from store.search import ScoredHit, Searcher, SearchParams, SearchPlan
from store.sql.bm25 import KeywordResult, KeywordSearcher

HYBRID_POOL = 50


@dataclass(frozen=True, slots=True)
class Side:
    """One side of a search, for ``explain``: its time and how many candidates it found
    (keyword: every visible row with a query term; vector: the hits the index returned)."""

    ms: float
    candidates: int


@dataclass(frozen=True, slots=True)
class TextSearch:
    """The hits of one keyword or hybrid query, and how each side ran (None: it did not)."""

    hits: list[ScoredHit]
    plan: SearchPlan
    vector: Side | None
    keyword: Side | None


def pool(top_k: int, offset: int) -> int:
    return max(HYBRID_POOL, 2 * (top_k + offset))


class HybridSearcher:
    def __init__(self, *, vectors: Searcher, keywords: KeywordSearcher) -> None:
        self._vectors = vectors
        self._keywords = keywords

    async def keyword(
        self,
        info: CollectionInfo,
        queries: Sequence[str],
        *,
        top_k: int,
        offset: int = 0,
        where: Filter | None = None,
        tenant: str | None = None,
    ) -> list[TextSearch]:
        """BM25 search, one result per query."""

        async def one(query: str) -> TextSearch:
            start = time.perf_counter()
            found = await self._keywords.search(
                info, query, top_k=top_k, offset=offset, where=where, tenant=tenant
            )
            side = Side((time.perf_counter() - start) * 1000, found.matched)
            hits = [
                ScoredHit(h.id, h.score, -h.score, HitScores(keyword=h.score, keyword_rank=r))
                for r, h in enumerate(found.hits, start=offset + 1)
            ]
            return TextSearch(hits, _keyword_plan(info), vector=None, keyword=side)

        return list(await asyncio.gather(*(one(q) for q in queries)))

    async def hybrid(
        self,
        info: CollectionInfo,
        queries: Sequence[str],
        vectors: Sequence[np.ndarray],
        *,
        alpha: Sequence[float],
        fusion: Sequence[Fusion],
        top_k: int,
        offset: int = 0,
        where: Filter | None = None,
        params: SearchParams = SearchParams(),
        consistency: Consistency = Consistency.SESSION,
        tenant: str | None = None,
    ) -> list[TextSearch]:
        """Keyword + vector, fused per query (``queries[i]`` with ``vectors[i]``, ``alpha[i]``
        and ``fusion[i]``)."""
        size = pool(top_k, offset)
        if params.ef is not None and params.ef < size:
            params = dataclasses.replace(params, ef=size)

        async def vector_side() -> tuple[list[list[ScoredHit]], SearchPlan, float]:
            start = time.perf_counter()
            found, plan = await self._vectors.search(
                info,
                vectors,
                top_k=size,
                where=where,
                params=params,
                consistency=consistency,
                tenant=tenant,
            )
            return found, plan, (time.perf_counter() - start) * 1000

        async def keyword_side(query: str) -> tuple[KeywordResult, float]:
            start = time.perf_counter()
            found = await self._keywords.search(info, query, top_k=size, where=where, tenant=tenant)
            return found, (time.perf_counter() - start) * 1000

        vector_task = asyncio.ensure_future(vector_side())  # concurrently with the keyword side
        try:
            by_keyword = await asyncio.gather(*(keyword_side(q) for q in queries))
        except BaseException:
            vector_task.cancel()
            raise
        by_vector, plan, vector_ms = await vector_task
        out = []
        for i, (found, keyword_ms) in enumerate(by_keyword):
            fused = fuse(
                [Ranked(h.id, h.score) for h in by_vector[i]],
                [Ranked(h.id, h.score) for h in found.hits],
                alpha=alpha[i],
                fusion=fusion[i],
            )[offset : offset + top_k]
            out.append(
                TextSearch(
                    [_hit(f) for f in fused],
                    plan,
                    vector=Side(vector_ms, len(by_vector[i])),
                    keyword=Side(keyword_ms, found.matched),
                )
            )
        return out


def _hit(f: Fused) -> ScoredHit:
    return ScoredHit(f.id, f.score, -f.score, f.scores)


def _keyword_plan(info: CollectionInfo) -> SearchPlan:
    return SearchPlan(
        index_type=info.index.type,
        params={},
        consistency=Consistency.STRONG,  # SQL, the system of record: every committed write
        expression="",
        route="keyword",
    )
