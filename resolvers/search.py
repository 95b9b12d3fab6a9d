"""Search use cases: similarity search (one or many vectors) joined with SQL records. Limits,
tenancy and model identity are enforced here; the limits (topK, batch sizes, the filter's depth
and list sizes) before any store call, even the collection lookup."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from resolvers.access import Principal, check_collection, require, tenant_for
from resolvers.grouping import Grouped, joined_groups
from resolvers.hybrid import (
    HybridQuery,
    check_hybrid,
    check_keyword,
    check_keyword_params,
    hybrid_search,
    keyword_search,
)
from resolvers.limits import DEFAULT_OFFSET, DEFAULT_TOP_K, Limits
from resolvers.paging import (
    NO_NEXT_PAGE,
    GroupBy,
    PageInfo,
    Query,
    check_paging,
    check_text_paging,
    continue_text,
    in_view,
    open_cursor,
    page_info,
    text_window,
    vector_value,
)
from resolvers.where import check_where_shape, parse_where
from store import (
    CollectionInfo,
    Consistency,
    Filter,
    Fusion,
    HitScores,
    InvalidInput,
    LimitExceeded,
    Loaders,
    NotFound,
    Scope,
    ScoredHit,
    SearchParams,
    SearchPlan,
    Side,
    Store,
    StoredRecord,
    TextSearch,
)

# Query texts longer than this are refused before reaching a model (a model reads at most its
# maxInput tokens, a few thousand characters at most; longer text is truncated there).
QUERY_TEXT_MAX = 10_000


@dataclass(frozen=True, slots=True)
class QueryVector:
    """A vector argument as parsed by the API layer: the array, or why it is not one."""

    array: np.ndarray | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class SearchRequest:
    collection: str
    vectors: Sequence[QueryVector] = ()
    near_id: str | None = None
    texts: Sequence[str] = ()  # embedded with the collection's own model
    keywords: Sequence[str] = ()  # BM25 over record text
    hybrid: Sequence[HybridQuery] = ()  # keyword + vector, fused
    top_k: int = DEFAULT_TOP_K
    offset: int = DEFAULT_OFFSET
    where: Mapping[str, Any] | None = None
    params: SearchParams = field(default_factory=SearchParams)
    consistency: Consistency | None = None
    tenant: str | None = None
    model: str | None = None
    after: str | None = None  # a cursor: the page after it (resolvers.paging)
    group_by: GroupBy | None = None


@dataclass(frozen=True, slots=True)
class Hit:
    id: str
    score: float
    distance: float
    record: StoredRecord
    scores: HitScores | None = None  # keyword and hybrid searches: each side's score and rank


@dataclass(frozen=True, slots=True)
class Explain:
    milvus_ms: float
    sql_ms: float
    total_ms: float
    plan: SearchPlan
    candidates: int
    returned: int
    # Keyword and hybrid searches: each side's time and candidates (None: that side did not run).
    vector: Side | None = None
    keyword: Side | None = None


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    hits: list[Hit]
    took_ms: float
    explain: Explain
    page_info: PageInfo = NO_NEXT_PAGE
    groups: list[Grouped[Hit]] | None = None  # groupBy: the hits, grouped


async def search(
    store: Store,
    loaders: Loaders,
    request: SearchRequest,
    *,
    limits: Limits,
    principal: Principal,
    batch: bool = False,
) -> list[SearchOutcome]:
    """Run one search (``batch=False``: exactly one vector, ``near_id``, text, keyword or hybrid
    query) or a batch (vectors or texts in one Milvus call); join every hit with SQL in one loader
    batch."""
    start, started = time.perf_counter(), time.time()
    require(principal, Scope.READ, action="searchBatch" if batch else "search")
    check_collection(principal, request.collection)
    _check_limits(request, limits, batch=batch)
    check_paging(
        after=request.after,
        offset=request.offset,
        group_by=request.group_by,
        top_k=request.top_k,
        max_top_k=limits.max_top_k,
    )
    check_where_shape(request.where, limits)
    info = await store.collections.get(request.collection, cached=True)
    request = dataclasses.replace(request, tenant=tenant_for(principal, info, request.tenant))
    _check_model(info, request.model)
    where = parse_where(info, request.where, limits)
    sides: list[tuple[Side | None, Side | None]] = []
    vectors: list[np.ndarray] = []
    cursor, groups = None, None
    if request.keywords or request.hybrid:
        check_text_paging(
            after=request.after,
            group_by=request.group_by,
            relative_score=any(q.fusion is Fusion.RELATIVE_SCORE for q in request.hybrid),
        )
        if request.after is not None:
            cursor = await open_cursor(store, request.after, _bound(info, request, vectors, 0))
        milvus_start = time.perf_counter()
        window = text_window(request.top_k, cursor)
        found = await _text_search(
            store, info, dataclasses.replace(request, top_k=window), where, batch=batch
        )
        results = [continue_text(f.hits, cursor)[: request.top_k] for f in found]
        plan = found[0].plan
        sides = [(f.vector, f.keyword) for f in found]
    else:
        vectors, exclude = await _query_vectors(store, info, request, batch=batch)
        if request.after is not None:
            cursor = await open_cursor(store, request.after, _bound(info, request, vectors, 0))
        milvus_start = time.perf_counter()
        if request.group_by is not None:
            groups, plan, _ = await store.grouper.search(
                info,
                vectors[0],
                field=request.group_by.field,
                size=request.group_by.size,
                groups=request.top_k,
                where=where,
                params=request.params,
                consistency=request.consistency or Consistency.SESSION,
                tenant=request.tenant,
                exclude_id=exclude,
            )
            results = [[h for g in groups for h in g.hits]]
        else:
            results, plan = await store.searcher.search(
                info,
                vectors,
                top_k=request.top_k,
                offset=request.offset,
                where=where,
                params=request.params,
                consistency=request.consistency or Consistency.SESSION,
                tenant=request.tenant,
                exclude_id=exclude,
                after=cursor.keyset if cursor else None,
            )
    sql_start = time.perf_counter()
    joined = [in_view(hits, cursor) for hits in await _join(loaders, info, request.tenant, results)]
    end = time.perf_counter()
    store.instruments.search_finished(
        info.name, milvus_s=sql_start - milvus_start, sql_s=end - sql_start, total_s=end - start
    )
    outcomes = []
    for i, (raw, hits) in enumerate(zip(results, joined, strict=True)):
        vector_side, keyword_side = sides[i] if sides else (None, None)
        explain = Explain(
            milvus_ms=(
                (vector_side.ms if vector_side else 0.0)
                if sides
                else (sql_start - milvus_start) * 1000
            ),
            sql_ms=(end - sql_start) * 1000,
            total_ms=(end - start) * 1000,
            plan=plan,
            candidates=len(raw),
            returned=len(hits),
            vector=vector_side,
            keyword=keyword_side,
        )
        pages = NO_NEXT_PAGE
        if groups is None and not request.offset:
            bound = _bound(info, request, vectors, i)
            pages = await page_info(
                store,
                info,
                query=bound,
                hits=raw,
                shown=hits,
                top_k=request.top_k,
                cursor=cursor,
                started=started,
                by_score=bool(request.keywords or request.hybrid),
            )
        outcomes.append(
            SearchOutcome(
                hits=hits,
                took_ms=explain.total_ms,
                explain=explain,
                page_info=pages,
                groups=joined_groups(groups, hits) if groups is not None else None,
            )
        )
    return outcomes


def _bound(
    info: CollectionInfo, request: SearchRequest, vectors: Sequence[np.ndarray], i: int
) -> Query:
    """What a cursor for query ``i`` is bound to (the same for a search and a searchBatch)."""
    if request.near_id is not None:
        kind, value = "nearId", request.near_id
    elif request.keywords:
        kind, value = "keyword", request.keywords[i]
    elif request.hybrid:
        q = request.hybrid[i]
        vector = vector_value(q.vector) if q.vector is not None else None
        kind, value = "hybrid", json.dumps([q.query, vector, q.alpha, q.fusion.value])
    else:
        kind, value = "vector", vector_value(vectors[i])
    return Query(
        collection=info.name,
        kind=kind,
        value=value,
        where=request.where,
        tenant=request.tenant,
        params=request.params,
        group_by=request.group_by,
        consistency=request.consistency,
        model=request.model,
    )


def _check_limits(request: SearchRequest, limits: Limits, *, batch: bool) -> None:
    # An argument out of its range is BAD_USER_INPUT; LIMIT_EXCEEDED is for how much one
    # request carries (batch sizes, cost) and for rates (README, Security).
    if not 1 <= request.top_k <= limits.max_top_k:
        raise InvalidInput(
            f"topK must be in 1..{limits.max_top_k}, got {request.top_k}",
            extensions={"limit": limits.max_top_k},
        )
    if request.offset < 0:
        raise InvalidInput(f"offset must not be negative, got {request.offset}")
    if request.offset + request.top_k > limits.max_top_k:
        raise InvalidInput(
            f"offset + topK is {request.offset + request.top_k}; the limit is {limits.max_top_k}",
            extensions={"limit": limits.max_top_k},
        )
    if batch:
        kinds = (request.vectors, request.texts, request.keywords, request.hybrid)
        if sum(bool(k) for k in kinds) != 1:
            raise InvalidInput(
                "searchBatch takes exactly one of vectors, texts, keywords and hybrids, not empty"
            )
        queries = sum(len(k) for k in kinds)
        if queries > limits.max_search_batch:
            raise LimitExceeded(
                f"{queries} queries in one searchBatch; the limit is {limits.max_search_batch}",
                extensions={"limit": limits.max_search_batch},
            )
    elif (
        len(request.vectors)
        + len(request.texts)
        + len(request.keywords)
        + len(request.hybrid)
        + (request.near_id is not None)
        != 1
    ):
        raise InvalidInput("search takes exactly one of vector, nearId, text, keyword and hybrid")
    _check_text_queries(request, batch=batch)


def _check_text_queries(request: SearchRequest, *, batch: bool) -> None:
    for i, text in enumerate(request.texts):
        where = f"texts[{i}]" if batch else "text"
        if not text.strip():
            raise InvalidInput(f"{where} is empty")
        if len(text) > QUERY_TEXT_MAX:
            raise InvalidInput(
                f"{where} has {len(text)} characters; the limit is {QUERY_TEXT_MAX}",
                extensions={"limit": QUERY_TEXT_MAX},
            )
    for i, keyword in enumerate(request.keywords):
        check_keyword(keyword, f"keywords[{i}]" if batch else "keyword")
    if request.keywords:
        check_keyword_params(request.params)
    for i, query in enumerate(request.hybrid):
        check_hybrid(query, f"hybrids[{i}]" if batch else "hybrid")


async def _text_search(
    store: Store, info: CollectionInfo, request: SearchRequest, where: Filter | None, *, batch: bool
) -> list[TextSearch]:
    if request.keywords:
        return await keyword_search(
            store,
            info,
            request.keywords,
            top_k=request.top_k,
            offset=request.offset,
            where=where,
            tenant=request.tenant,
        )
    return await hybrid_search(
        store,
        info,
        request.hybrid,
        top_k=request.top_k,
        offset=request.offset,
        where=where,
        params=request.params,
        consistency=request.consistency or Consistency.SESSION,
        tenant=request.tenant,
        batch=batch,
    )


def _check_model(info: CollectionInfo, model: str | None) -> None:
    if model is None:
        return
    if info.model is None:
        raise InvalidInput(
            f"model {model!r} given, but collection {info.name!r} declares no embedding model"
        )
    if not info.model.matches(model):
        raise InvalidInput(
            f"model mismatch: collection {info.name!r} holds vectors of {info.model.label()!r}, "
            f"the query names {model!r}",
            extensions={"expected": info.model.label(), "actual": model},
        )


async def _query_vectors(
    store: Store, info: CollectionInfo, request: SearchRequest, *, batch: bool
) -> tuple[list[np.ndarray], str | None]:
    if request.near_id is not None:
        found = await store.reader.get(info.name, request.near_id, tenant=request.tenant)
        if found is None:
            raise NotFound(f"nearId {request.near_id!r}: no such record in {info.name!r}")
        return [np.frombuffer(found.vector, dtype="<f4")], request.near_id
    if request.texts:
        # Always the collection's own model: vectors of different models are never compared.
        served = store.embedders.require(info)
        return await served.embed_queries(request.texts), None
    arrays = []
    for i, v in enumerate(request.vectors):
        where = f"vectors[{i}]" if batch else "vector"
        if v.array is None:
            raise InvalidInput(f"{where}: {v.error}")
        if v.array.shape[0] != info.dimension:
            raise InvalidInput(
                f"{where}: dimension is {v.array.shape[0]}, expected {info.dimension}",
                extensions={"expected": info.dimension, "actual": int(v.array.shape[0])},
            )
        arrays.append(v.array)
    return arrays, None


async def _join(
    loaders: Loaders,
    info: CollectionInfo,
    tenant: str | None,
    results: list[list[ScoredHit]],
) -> list[list[Hit]]:
    """One loader batch for every hit; hits whose SQL record is gone are dropped."""
    keys = [(info.name, tenant, h.id) for hits in results for h in hits]
    records = await loaders.records.load_many(keys) if keys else []
    by_id = {k[2]: r for k, r in zip(keys, records, strict=True)}
    return [
        [
            Hit(h.id, h.score, h.distance, rec, h.scores)
            for h in hits
            if (rec := by_id.get(h.id)) is not None
        ]
        for hits in results
    ]
