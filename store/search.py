"""Similarity search: Milvus finds ids and raw distances; scores follow design.md section 4.

Routes (``SearchPlan.route``, shown by ``explain``):

- ``index``: the vector index answers.
- ``exact``: a filter (or tenant) that keeps at most ``EXACT_CANDIDATES`` rows, on an index that
  is not exact for selective filters (``Capabilities.exact_when_selective``: Milvus Lite): the
  matching rows' vectors are read from SQL and ranked exactly here. A filter found to keep more
  goes to the index for ``BROAD_SECONDS`` without being probed again. (Asking Milvus Lite for
  the matching ids instead cost more: docs/measurements.md.)
- ``exact-fallback``: the index returned fewer hits than asked while SQL has more matching rows
  (a count that stops at what was asked): the search is answered exactly from SQL, up to
  ``EXACT_FALLBACK`` rows; past that the answer is marked ``short``. Range searches, which may
  rightly return fewer, are not checked.

- COSINE: score = cosine similarity, distance = 1 - score.
- IP: score = inner product, distance = -score.
- L2: distance = Euclidean distance (Milvus reports it squared), score = 1 / (1 + distance).
Hits come back ordered by score, highest first. The SQL join happens in the caller through the
per-request record loader (one statement for all hits of a request).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from store.errors import InvalidInput
from store.filters import Filter, quote, to_milvus
from store.fusion import HitScores
from store.index import FILTERED_EF, VectorHit, VectorIndex
from store.paging import TOPK_DEPTH, Keyset, continue_after, search_after
from store.records import CollectionInfo, Consistency, IndexType, Metric
from store.sql.candidates import Candidates, Matching

# Rows a selective filter may keep for the exact route (their vectors: 3 MB at 384-d).
EXACT_CANDIDATES = 2048
# The most rows read to answer exactly when the index came back short.
EXACT_FALLBACK = 50_000
# How long a filter found to keep more than EXACT_CANDIDATES rows goes straight to the index,
# and how many such filters a process remembers.
BROAD_SECONDS = 30.0
BROAD_REMEMBERED = 1024

# ef for HNSW when the client gives none: high recall (Milvus's own default is ef = topK).
DEFAULT_EF = 128
# With a filter, HNSW skips the candidates the filter drops and needs a wider search for the same
# recall: the default for a filtered search is the backend's (``Capabilities.filtered_ef``).
MAX_EF = 32_768


@dataclass(frozen=True, slots=True)
class SearchParams:
    ef: int | None = None
    nprobe: int | None = None
    radius: float | None = None
    range_filter: float | None = None


@dataclass(frozen=True, slots=True)
class ScoredHit:
    id: str
    score: float
    distance: float
    # Each side's score and rank, for keyword and hybrid searches (``store.hybrid``).
    scores: HitScores | None = None


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """What the search ran with (for ``explain``)."""

    index_type: IndexType
    params: dict[str, Any]
    consistency: Consistency
    expression: str
    route: str = "index"  # "index", "exact" or "exact-fallback" (module docstring)
    short: bool = False  # fewer hits than the collection could give: the index fell short


def score(metric: Metric, raw: float) -> tuple[float, float]:
    """(score, distance) from the value Milvus reports."""
    if metric is Metric.COSINE:
        return raw, 1.0 - raw
    if metric is Metric.IP:
        return raw, -raw
    distance = math.sqrt(max(raw, 0.0))
    return 1.0 / (1.0 + distance), distance


def milvus_params(
    info: CollectionInfo,
    params: SearchParams,
    *,
    limit: int,
    filtered: bool = False,
    filtered_ef: int = FILTERED_EF,
) -> dict[str, Any]:
    """Search parameters for the collection's index; defaults tuned for recall."""
    out: dict[str, Any] = {}
    index = info.index.type
    if params.ef is not None:
        if index is not IndexType.HNSW:
            raise InvalidInput(f"params.ef applies to HNSW indexes; this one is {index.value}")
        if params.ef < limit:
            raise InvalidInput(
                f"params.ef must be at least topK + offset ({limit}), got {params.ef}"
            )
        if params.ef > MAX_EF:
            raise InvalidInput(f"params.ef must be at most {MAX_EF}, got {params.ef}")
        out["ef"] = params.ef
    elif index is IndexType.HNSW:
        out["ef"] = min(MAX_EF, max(filtered_ef if filtered else DEFAULT_EF, limit))
    nlist = int(info.index.params.get("nlist", 128))
    if params.nprobe is not None:
        if index not in (IndexType.IVF_FLAT, IndexType.IVF_SQ8, IndexType.IVF_PQ):
            raise InvalidInput(f"params.nprobe applies to IVF indexes; this one is {index.value}")
        if not 1 <= params.nprobe <= nlist:
            raise InvalidInput(f"params.nprobe must be in 1..{nlist} (nlist), got {params.nprobe}")
        out["nprobe"] = params.nprobe
    elif index in (IndexType.IVF_FLAT, IndexType.IVF_SQ8, IndexType.IVF_PQ):
        out["nprobe"] = min(nlist, max(16, nlist // 4))
    if params.radius is not None or params.range_filter is not None:
        out.update(_range(info.metric, params))
    return out


def _range(metric: Metric, params: SearchParams) -> dict[str, Any]:
    """Range search bounds in Milvus's terms. The API speaks scores for COSINE/IP (radius is the
    lowest score kept, rangeFilter the highest) and Euclidean distances for L2 (radius is the
    largest distance kept, rangeFilter the smallest)."""
    if params.radius is None:
        raise InvalidInput("params.rangeFilter needs params.radius")
    for name, value in (("radius", params.radius), ("rangeFilter", params.range_filter)):
        if value is not None and not math.isfinite(value):
            raise InvalidInput(f"params.{name} must be finite")
    out: dict[str, Any] = {}
    if metric is Metric.L2:
        if params.radius <= 0:
            raise InvalidInput("params.radius must be positive for L2")
        out["radius"] = params.radius**2
        if params.range_filter is not None:
            if not 0 <= params.range_filter < params.radius:
                raise InvalidInput("for L2, params.rangeFilter must be in [0, radius)")
            out["range_filter"] = params.range_filter**2
    else:
        out["radius"] = params.radius
        if params.range_filter is not None:
            if params.range_filter <= params.radius:
                raise InvalidInput(
                    f"for {metric.value}, params.rangeFilter must be greater than radius"
                )
            out["range_filter"] = params.range_filter
    return out


def expression(
    info: CollectionInfo,
    where: Filter | None,
    *,
    tenant: str | None,
    exclude_id: str | None = None,
    like: str = "full",
) -> str:
    """The Milvus filter: the tenant (partition key) and excluded id are added server-side."""
    parts: list[str] = []
    if tenant is not None:
        parts.append(f"tenant == {quote(tenant)}")
    if exclude_id is not None:
        parts.append(f"id != {quote(exclude_id)}")
    if where is not None:
        parts.append(to_milvus(where, fields=info.fields, like=like))  # type: ignore[arg-type]
    if len(parts) <= 1:
        return parts[0] if parts else ""
    return " and ".join(f"({p})" for p in parts)


class Searcher:
    def __init__(
        self,
        *,
        vectors: VectorIndex,
        candidates: Candidates,
        exact_candidates: int = EXACT_CANDIDATES,
        fallback_rows: int = EXACT_FALLBACK,
        topk_depth: int = TOPK_DEPTH,
    ) -> None:
        self._vectors = vectors
        self._candidates = candidates
        self._exact_candidates = exact_candidates
        self._fallback_rows = fallback_rows
        self._topk_depth = topk_depth  # store.paging: pages this deep by a top-k, then by range
        self._broad: dict[tuple[str, str], float] = {}  # (collection, expression): until when

    async def search(
        self,
        info: CollectionInfo,
        vectors: Sequence[np.ndarray],
        *,
        top_k: int,
        offset: int = 0,
        where: Filter | None = None,
        params: SearchParams = SearchParams(),
        consistency: Consistency = Consistency.SESSION,
        tenant: str | None = None,
        exclude_id: str | None = None,
        after: Keyset | None = None,
    ) -> tuple[list[list[ScoredHit]], SearchPlan]:
        """``after``: the page after that keyset (one vector, no offset; ``store.paging``)."""
        caps = self._vectors.known_capabilities or await self._vectors.connect()
        expr = expression(info, where, tenant=tenant, exclude_id=exclude_id, like=caps.like)
        search_params = milvus_params(
            info,
            params,
            limit=top_k + offset,
            filtered=where is not None,
            filtered_ef=caps.filtered_ef,
        )
        plan = SearchPlan(
            index_type=info.index.type,
            params=search_params,
            consistency=consistency,
            expression=expr,
        )
        scope = Matching(where=where, tenant=tenant, exclude_id=exclude_id)
        if (where is not None or tenant is not None) and not caps.exact_when_selective:
            rows = await self._selective_rows(info, scope, expr)
            if rows is not None:
                if after is not None:  # every matching row is ranked: continue the ranking
                    ranking = exact_hits(info.metric, vectors[0], rows, search_params, len(rows), 0)
                    exact = [continue_after(info.metric, ranking, after)[:top_k]]
                else:
                    exact = [
                        exact_hits(info.metric, v, rows, search_params, top_k, offset)
                        for v in vectors
                    ]
                return [_scored(info.metric, hits) for hits in exact], replace(plan, route="exact")
        if after is not None:
            page, short = await search_after(
                self._vectors,
                info,
                vectors[0],
                keyset=after,
                top_k=top_k,
                expr=expr,
                params=search_params,
                consistency=consistency,
                range_search=caps.range_search,
                topk_depth=self._topk_depth,
            )
            return [_scored(info.metric, page)], replace(plan, short=short)
        raw = await self._vectors.search(
            info,
            vectors,
            limit=top_k,
            offset=offset,
            expr=expr,
            params=search_params,
            consistency=consistency,
        )
        if "radius" not in search_params and any(len(hits) < top_k for hits in raw):
            raw, plan = await self._unless_short(info, vectors, raw, plan, scope, top_k, offset)
        return [_scored(info.metric, hits) for hits in raw], plan

    async def _selective_rows(
        self, info: CollectionInfo, scope: Matching, expr: str
    ) -> list[tuple[str, bytes]] | None:
        """The matching rows when there are few enough to rank exactly, else None. A filter found
        broad is not probed again for ``BROAD_SECONDS`` (the probe reads up to
        ``exact_candidates`` rows for nothing)."""
        key = (info.name, expr)
        now = time.monotonic()
        if self._broad.get(key, 0.0) > now:
            return None
        rows = await self._candidates.vectors(info, scope, at_most=self._exact_candidates)
        if rows is None:
            self._broad[key] = now + BROAD_SECONDS
            while len(self._broad) > BROAD_REMEMBERED:
                self._broad.pop(next(iter(self._broad)))
        return rows

    async def _unless_short(
        self,
        info: CollectionInfo,
        vectors: Sequence[np.ndarray],
        raw: list[list[VectorHit]],
        plan: SearchPlan,
        scope: Matching,
        top_k: int,
        offset: int,
    ) -> tuple[list[list[VectorHit]], SearchPlan]:
        """The index answered fewer than ``top_k`` for some query: when SQL has more matching
        rows than that, answer those queries exactly (or say the answer is short)."""
        available = await self._candidates.count(info, scope, at_most=offset + top_k)
        expected = min(top_k, max(0, available - offset))
        short = [i for i, hits in enumerate(raw) if len(hits) < expected]
        if not short:
            return raw, plan
        rows = await self._candidates.vectors(info, scope, at_most=self._fallback_rows)
        if rows is None:
            return raw, replace(plan, short=True)
        raw = list(raw)
        for i in short:
            raw[i] = exact_hits(info.metric, vectors[i], rows, plan.params, top_k, offset)
        return raw, replace(plan, route="exact-fallback")


def exact_hits(
    metric: Metric,
    query: np.ndarray,
    rows: Sequence[tuple[str, bytes]],
    params: dict[str, Any],
    top_k: int,
    offset: int,
) -> list[VectorHit]:
    """The best ``top_k`` rows after ``offset`` by exact distance, in Milvus's terms (similarity
    for COSINE and IP, squared distance for L2), with Milvus's range bounds when given."""
    if not rows:
        return []
    q = np.asarray(query, dtype=np.float32)
    matrix = np.frombuffer(b"".join(v for _, v in rows), dtype="<f4").reshape(len(rows), -1)
    if metric is Metric.L2:
        raw = ((matrix - q) ** 2).sum(axis=1)
        keep = np.ones(len(rows), dtype=bool)
        if "radius" in params:
            keep &= raw < params["radius"]
        if "range_filter" in params:
            keep &= raw >= params["range_filter"]
        order = np.argsort(raw, kind="stable")
    else:
        raw = matrix @ q
        if metric is Metric.COSINE:
            norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(q))
            raw = np.divide(raw, norms, out=np.zeros_like(raw), where=norms > 0)
        keep = np.ones(len(rows), dtype=bool)
        if "radius" in params:
            keep &= raw > params["radius"]
        if "range_filter" in params:
            keep &= raw <= params["range_filter"]
        order = np.argsort(-raw, kind="stable")
    chosen = [int(i) for i in order if keep[i]][offset : offset + top_k]
    return [VectorHit(rows[i][0], float(raw[i])) for i in chosen]


def _scored(metric: Metric, hits: list[VectorHit]) -> list[ScoredHit]:
    out = []
    for h in hits:
        s, d = score(metric, h.distance)
        out.append(ScoredHit(h.id, s, d))
    out.sort(key=lambda h: h.score, reverse=True)
    return out
