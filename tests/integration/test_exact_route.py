"""Searches are never silently wrong: a selective filter keeps its recall on every backend, and
an index that returns fewer hits than the collection has is answered exactly or says so.

Ground truth is numpy over the same vectors; ``explain { route short }`` says which route ran.
"""

from __future__ import annotations

import collections
from typing import Any

import numpy as np
import pytest

from store.index import VectorHit
from store.search import Searcher
from tests.conftest import Api
from tests.fakes import Wrapped, serving_with
from tests.integration.test_search import b64, exact, setup, wait_until_indexed

SEARCH = """
query($c: String!, $v: Vector, $near: ID, $k: Int! = 10, $o: Int! = 0, $w: Filter) {
  search(collection: $c, vector: $v, nearId: $near, topK: $k, offset: $o, where: $w) {
    hits { id score }
    explain { route short candidates returned }
  }
}
"""
UPSERT = """
mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: $c, records: $r) {
  upserted } }
"""


async def load_slice(api: Api, name: str, base: np.ndarray, records: list[dict[str, Any]]) -> None:
    await api.ok(
        """mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }""",
        {
            "i": {
                "name": name,
                "dimension": base.shape[1],
                "fields": [
                    {"name": "section", "type": "STRING"},
                    {"name": "has_homepage", "type": "BOOL"},
                ],
            }
        },
    )
    for start in range(0, len(base), 1000):
        chunk = [
            {
                "id": str(i),
                "vector": b64(base[i]),
                "metadata": {
                    "section": records[i]["metadata"]["section"],
                    "has_homepage": records[i]["metadata"]["has_homepage"],
                },
            }
            for i in range(start, min(start + 1000, len(base)))
        ]
        await api.ok(UPSERT, {"c": name, "r": chunk})
    info = await api.store.collections.get(name)
    await api.store.writer.flush(info)
    await wait_until_indexed(api, info, len(base))


@pytest.mark.milvus_only
async def test_filters_keep_their_recall_on_real_embeddings(
    api: Api, name: str, debian_slice: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]
) -> None:
    """About 1% of the rows (one small section) and about 60% (has a homepage): recall@10
    against numpy of at least 0.95 on both Milvus backends. Milvus Lite's HNSW loses most of
    the first (issue 19 measured 0.61), so vectorql ranks those rows exactly there."""
    base, queries, records = debian_slice
    await load_slice(api, name, base, records)
    sections = collections.Counter(r["metadata"]["section"] for r in records)
    small = min((s for s, n in sections.items() if n >= 30), key=lambda s: sections[s])
    assert sections[small] <= 0.02 * len(records)
    lite = api.store.vectors.known_capabilities.lite
    normed = base / np.linalg.norm(base, axis=1, keepdims=True)
    cases = [
        ({"field": "section", "eq": small}, [r["metadata"]["section"] == small for r in records]),
        ({"field": "has_homepage", "eq": True}, [r["metadata"]["has_homepage"] for r in records]),
    ]
    for where, keep in cases:
        allowed = np.flatnonzero(np.asarray(keep))
        recalls, routes = [], set()
        for q in queries:
            sims = normed[allowed] @ (q / np.linalg.norm(q))
            truth = set(allowed[np.argsort(-sims)[:10]].tolist())
            data = (await api.ok(SEARCH, {"c": name, "v": b64(q), "w": where}))["search"]
            got = {int(h["id"]) for h in data["hits"]}
            recalls.append(len(got & truth) / 10)
            routes.add(data["explain"]["route"])
            assert not data["explain"]["short"]
        assert float(np.mean(recalls)) >= 0.95, (where, np.mean(recalls))
        if len(allowed) <= 2048 and lite:
            assert routes == {"exact"}, routes
            assert float(np.mean(recalls)) == 1.0
        elif len(allowed) > 2048:
            assert routes == {"index"}, routes


class Truncating(Wrapped):
    """An index that returns at most ``keep`` hits per query, as an index falling short would."""

    def __init__(self, real: Any, keep: int) -> None:
        super().__init__(real)
        self.keep = keep

    async def search(self, *args: Any, **kwargs: Any) -> list[list[VectorHit]]:
        return [hits[: self.keep] for hits in await self.real.search(*args, **kwargs)]


@pytest.mark.sql_only
async def test_an_index_that_falls_short_is_answered_exactly(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=40, index={"type": "FLAT"})
    q = np.random.default_rng(7).normal(size=vectors.shape[1]).astype(np.float32)
    order, _, _ = exact(vectors, q, "COSINE")
    async with serving_with(api, Truncating(api.store.vectors, keep=3)):
        for k, o in ((10, 0), (5, 7)):
            data = (await api.ok(SEARCH, {"c": name, "v": b64(q), "k": k, "o": o}))["search"]
            assert [h["id"] for h in data["hits"]] == [f"r{i:04d}" for i in order[o : o + k]]
            assert data["explain"]["route"] == "exact-fallback"
            assert not data["explain"]["short"]
        near = (await api.ok(SEARCH, {"c": name, "near": "r0000", "k": 39}))["search"]
        assert len(near["hits"]) == 39
        assert "r0000" not in {h["id"] for h in near["hits"]}
    # The real index is not short: the index answers.
    data = (await api.ok(SEARCH, {"c": name, "v": b64(q), "k": 10}))["search"]
    assert data["explain"]["route"] == "index"
    assert [h["id"] for h in data["hits"]] == [f"r{i:04d}" for i in order[:10]]


@pytest.mark.sql_only
async def test_a_short_answer_that_cannot_be_completed_says_so(api: Api, name: str) -> None:
    vectors = await setup(api, name, n=40, index={"type": "FLAT"})
    q = vectors[5]
    async with serving_with(api, Truncating(api.store.vectors, keep=3)) as store:
        store.searcher = Searcher(
            vectors=store.vectors, candidates=store.candidates, fallback_rows=10
        )
        data = (await api.ok(SEARCH, {"c": name, "v": b64(q), "k": 10}))["search"]
    assert len(data["hits"]) == 3
    assert data["explain"] == {"route": "index", "short": True, "candidates": 3, "returned": 3}


@pytest.mark.sql_only
async def test_asking_for_more_than_the_filter_keeps_is_not_short(api: Api, name: str) -> None:
    """Fewer hits than topK because fewer rows match is a complete answer."""
    vectors = await setup(api, name, n=6, index={"type": "FLAT"})
    q = vectors[1]
    data = (
        await api.ok(
            SEARCH, {"c": name, "v": b64(q), "k": 10, "w": {"field": "group", "eq": "even"}}
        )
    )["search"]
    assert len(data["hits"]) == 3
    assert not data["explain"]["short"]
    assert data["explain"]["route"] in ("index", "exact")
