"""Keyword and hybrid search requests (issue 22): their rules, checked before the store is asked,
and the query vectors of hybrid queries. ``resolvers.search`` joins the hits with SQL.

- A keyword query must have a term (letters or digits; ``store.analyzer``) and at most
  ``MAX_QUERY_TERMS`` distinct ones; a hybrid query's text too (the keyword side runs on it).
- ``alpha`` is in [0, 1]; ``params`` apply to the vector side, so a keyword search takes none.
- A hybrid query's vector is ``vector`` when given (dimension checked, like any query vector),
  else the embedding of its text with the collection's own model (``BAD_USER_INPUT`` when this
  server has no embedder for it).
- A collection (or tenant) whose records have no text finds nothing by keyword: the result is
  empty and ``explain.keywordCandidates`` is 0, as for a query no record matches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from store import (
    CollectionInfo,
    Consistency,
    Filter,
    Fusion,
    InvalidInput,
    SearchParams,
    Store,
    TextSearch,
    keyword_terms,
)

# Longest keyword query, in characters, and most distinct terms (each is a lookup in the index).
KEYWORD_MAX = 10_000
MAX_QUERY_TERMS = 64


@dataclass(frozen=True, slots=True)
class HybridQuery:
    """One hybrid query as parsed by the API layer. ``vector_error``: why ``vector`` given by
    the client is not one."""

    query: str
    vector: np.ndarray | None = None
    vector_error: str | None = None
    alpha: float = 0.5
    fusion: Fusion = Fusion.RRF


def check_keyword(text: str, where: str) -> None:
    if not text.strip():
        raise InvalidInput(f"{where} is empty")
    if len(text) > KEYWORD_MAX:
        raise InvalidInput(
            f"{where} has {len(text)} characters; the limit is {KEYWORD_MAX}",
            extensions={"limit": KEYWORD_MAX},
        )
    distinct = set(keyword_terms(text))
    if not distinct:
        raise InvalidInput(f"{where} has no terms to search for (letters or digits)")
    if len(distinct) > MAX_QUERY_TERMS:
        raise InvalidInput(
            f"{where} has {len(distinct)} distinct terms; the limit is {MAX_QUERY_TERMS}",
            extensions={"limit": MAX_QUERY_TERMS},
        )


def check_hybrid(query: HybridQuery, where: str) -> None:
    check_keyword(query.query, f"{where}.query")
    if not (math.isfinite(query.alpha) and 0.0 <= query.alpha <= 1.0):
        raise InvalidInput(f"{where}.alpha must be in [0, 1], got {query.alpha}")


def check_keyword_params(params: SearchParams) -> None:
    if params != SearchParams():
        raise InvalidInput("params apply to vector search; a keyword search takes none")


async def keyword_search(
    store: Store,
    info: CollectionInfo,
    keywords: Sequence[str],
    *,
    top_k: int,
    offset: int,
    where: Filter | None,
    tenant: str | None,
) -> list[TextSearch]:
    return await store.hybrid.keyword(
        info, keywords, top_k=top_k, offset=offset, where=where, tenant=tenant
    )


async def hybrid_search(
    store: Store,
    info: CollectionInfo,
    queries: Sequence[HybridQuery],
    *,
    top_k: int,
    offset: int,
    where: Filter | None,
    params: SearchParams,
    consistency: Consistency,
    tenant: str | None,
    batch: bool,
) -> list[TextSearch]:
    vectors = await _vectors(store, info, queries, batch=batch)
    return await store.hybrid.hybrid(
        info,
        [q.query for q in queries],
        vectors,
        alpha=[q.alpha for q in queries],
        fusion=[q.fusion for q in queries],
        top_k=top_k,
        offset=offset,
        where=where,
        params=params,
        consistency=consistency,
        tenant=tenant,
    )


async def _vectors(
    store: Store, info: CollectionInfo, queries: Sequence[HybridQuery], *, batch: bool
) -> list[np.ndarray]:
    """Each query's vector: the client's, or its text embedded with the collection's model."""
    out: list[np.ndarray | None] = []
    for i, q in enumerate(queries):
        where = f"hybrids[{i}].vector" if batch else "hybrid.vector"
        if q.vector_error is not None:
            raise InvalidInput(f"{where}: {q.vector_error}")
        if q.vector is not None and q.vector.shape[0] != info.dimension:
            raise InvalidInput(
                f"{where}: dimension is {q.vector.shape[0]}, expected {info.dimension}",
                extensions={"expected": info.dimension, "actual": int(q.vector.shape[0])},
            )
        out.append(q.vector)
    missing = [i for i, v in enumerate(out) if v is None]
    if missing:
        # Always the collection's own model: vectors of different models are never compared.
        served = store.embedders.require(info)
        embedded = await served.embed_queries([queries[i].query for i in missing])
        for i, v in zip(missing, embedded, strict=True):
            out[i] = v
    return [v for v in out if v is not None]
