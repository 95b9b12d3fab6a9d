"""Search beyond the first page (issue 23): cursors over search results, and group-by.

Ground truth is numpy over the same vectors (the shared dataset's slice, or random vectors under
a FLAT index where the test needs exactness). Pages continue the ranking with no hit twice, with
filters, under concurrent writes, and far past the offset cap; cursors are signed, bound to their
search and expire; groups hold the best hits of each value, in the order of their best hit.
"""

from __future__ import annotations

import base64
import collections
import itertools
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from store import Keyset, SearchCursor, next_keyset, raw_value
from store.search import Searcher
from tests.conftest import Api
from tests.integration.test_exact_route import load_slice
from tests.integration.test_search import UPSERT, b64, exact

PAGE = """
query($c: String!, $v: Vector, $near: ID, $k: Int! = 10, $after: String, $w: Filter,
      $o: Int! = 0, $g: GroupByInput) {
  search(collection: $c, vector: $v, nearId: $near, topK: $k, after: $after, where: $w,
         offset: $o, groupBy: $g) {
    hits { id score record { metadata } }
    groups { value hits { id score } }
    pageInfo { hasNextPage endCursor }
    explain { route short }
  }
}
"""
DELETE = """
mutation($c: String!, $ids: [ID!]) { deleteRecords(collection: $c, ids: $ids) { deleted } }
"""

Slice = tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]


@pytest.fixture(scope="module")
async def loaded(api: Api, debian_slice: Slice) -> AsyncIterator[str]:
    """The 5,000-record slice of the shared dataset in one collection per backend cell."""
    base, _, records = debian_slice
    name = f"t_pages_{uuid.uuid4().hex[:8]}"
    await load_slice(api, name, base, records)
    yield name
    await api.ok("mutation($n: String!) { dropCollection(name: $n) }", {"n": name})


def ranking(base: np.ndarray, q: np.ndarray, keep: np.ndarray | None = None) -> list[str]:
    """Ids by cosine similarity, best first (only rows where ``keep``)."""
    normed = base / np.linalg.norm(base, axis=1, keepdims=True)
    sims = normed @ (q / np.linalg.norm(q))
    rows = np.flatnonzero(keep) if keep is not None else np.arange(len(base))
    return [str(i) for i in rows[np.argsort(-sims[rows], kind="stable")]]


async def pages(
    api: Api, variables: dict[str, Any], *, size: int, count: int
) -> list[dict[str, Any]]:
    """Up to ``count`` pages of ``size``, each after the one before; stops at the last."""
    out: list[dict[str, Any]] = []
    after = None
    for _ in range(count):
        data = (await api.ok(PAGE, {**variables, "k": size, "after": after}))["search"]
        out.append(data)
        if not data["pageInfo"]["hasNextPage"]:
            break
        after = data["pageInfo"]["endCursor"]
    return out


async def test_pages_continue_the_exact_ranking(api: Api, loaded: str, debian_slice: Slice) -> None:
    """20 pages of 100: no hit twice, and together the top 2,000 of numpy's ranking (to the
    index's recall); a filtered walk keeps its filter on every page."""
    base, queries, records = debian_slice
    for q in queries[:2]:
        walked = await pages(api, {"c": loaded, "v": b64(q)}, size=100, count=20)
        ids = [h["id"] for p in walked for h in p["hits"]]
        assert len(walked) == 20
        assert len(ids) == 2000
        assert len(set(ids)) == len(ids), "a hit was shown twice"
        truth = ranking(base, q)[:2000]
        assert len(set(ids) & set(truth)) / 2000 >= 0.95
        scores = [h["score"] for p in walked for h in p["hits"]]
        assert all(a >= b - 1e-6 for a, b in itertools.pairwise(scores))
    # Filtered: about 60% of the rows (the index's route) and one small section (on Milvus Lite,
    # the exact route: equal to numpy).
    sections = collections.Counter(r["metadata"]["section"] for r in records)
    small = min((s for s, n in sections.items() if n >= 150), key=lambda s: sections[s])
    q = queries[2]
    for where, keep in (
        ({"field": "has_homepage", "eq": True}, [r["metadata"]["has_homepage"] for r in records]),
        ({"field": "section", "eq": small}, [r["metadata"]["section"] == small for r in records]),
    ):
        walked = await pages(api, {"c": loaded, "v": b64(q), "w": where}, size=50, count=30)
        ids = [h["id"] for p in walked for h in p["hits"]]
        assert len(set(ids)) == len(ids)
        truth = ranking(base, q, np.asarray(keep))[: len(ids)]
        assert len(set(ids) & set(truth)) / max(1, len(truth)) >= 0.95, where
        field = where["field"]
        assert all(h["record"]["metadata"][field] == where["eq"] for p in walked for h in p["hits"])
        if sum(keep) <= 1500:  # walked to the end: every matching row once
            assert not walked[-1]["pageInfo"]["hasNextPage"]
            assert sorted(ids) == sorted(truth)
            assert len(ids) == sum(keep)


async def test_group_by_holds_the_best_hits_of_each_value(
    api: Api, loaded: str, debian_slice: Slice
) -> None:
    """groupBy section: the first topK sections by their best hit, each with its best hits,
    against numpy; flat hits are the groups' hits in order."""
    base, queries, records = debian_slice
    section = np.asarray([r["metadata"]["section"] for r in records])
    agree = checked = 0
    for q in queries[:3]:
        order = ranking(base, q)
        best: dict[str, list[str]] = {}
        for i in order:
            best.setdefault(str(section[int(i)]), []).append(i)
        truth_groups = list(best)[:8]  # dict order: by best hit
        for size in (1, 3):
            data = (
                await api.ok(
                    PAGE,
                    {"c": loaded, "v": b64(q), "k": 8, "g": {"field": "section", "size": size}},
                )
            )["search"]
            groups = data["groups"]
            assert [h["id"] for g in groups for h in g["hits"]] == [h["id"] for h in data["hits"]]
            assert len(groups) == 8
            assert len({g["value"] for g in groups}) == 8
            assert all(len(g["hits"]) <= size for g in groups)
            assert not data["pageInfo"]["hasNextPage"]
            assert data["pageInfo"]["endCursor"] is None
            bests = [g["hits"][0]["score"] for g in groups]
            assert bests == sorted(bests, reverse=True)
            for g in groups:
                assert all(str(section[int(h["id"])]) == g["value"] for h in g["hits"])
                checked += 1
                expected = best[g["value"]][:size]
                agree += [h["id"] for h in g["hits"]] == expected
            overlap = len({g["value"] for g in groups} & set(truth_groups))
            assert overlap >= 7, (overlap, [g["value"] for g in groups], truth_groups)
    assert agree / checked >= 0.9, (agree, checked)


async def test_paging_under_concurrent_writes_never_repeats(api: Api, name: str) -> None:
    """Between pages, records are added, moved (upserted with a new vector, some to the top)
    and deleted: no id is shown twice, a deleted record never after its delete, and every record
    left alone is shown exactly once (FLAT: the ranking is exact)."""
    dim, n = 16, 400
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": {"name": name, "dimension": dim, "index": {"type": "FLAT"}}},
    )
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    await api.ok(
        UPSERT,
        {"c": name, "r": [{"id": f"r{i}", "vector": b64(v)} for i, v in enumerate(vectors)]},
    )
    q = rng.normal(size=dim).astype(np.float32)
    shown: list[str] = []
    touched: set[str] = set()
    deleted_before: dict[str, int] = {}
    after, page = None, 0
    while True:
        data = (await api.ok(PAGE, {"c": name, "v": b64(q), "k": 25, "after": after}))["search"]
        for h in data["hits"]:
            assert deleted_before.get(h["id"], page + 1) > page, f"{h['id']} shown after delete"
        shown += [h["id"] for h in data["hits"]]
        if not data["pageInfo"]["hasNextPage"]:
            break
        after, page = data["pageInfo"]["endCursor"], page + 1
        # Move four records (two of them straight to the top: the query itself), add two,
        # delete three.
        moved = [f"r{i}" for i in rng.choice(n, size=4, replace=False)]
        writes = [
            {"id": m, "vector": b64(q if j < 2 else rng.normal(size=dim))}
            for j, m in enumerate(moved)
        ] + [{"id": f"new{page}-{j}", "vector": b64(q)} for j in range(2)]
        await api.ok(UPSERT, {"c": name, "r": writes})
        gone = [f"r{i}" for i in rng.choice(n, size=3, replace=False)]
        await api.ok(DELETE, {"c": name, "ids": gone})
        touched |= set(moved) | set(gone)
        deleted_before.update({g: page for g in gone if g not in deleted_before})
        assert page < 40, "the walk does not end"
    assert len(shown) == len(set(shown)), collections.Counter(shown).most_common(3)
    untouched = {f"r{i}" for i in range(n)} - touched
    assert untouched <= set(shown), sorted(untouched - set(shown))[:5]
    assert not any(s.startswith("new") for s in shown), "added after the first page"


@pytest.mark.sql_only
async def test_cursors_are_signed_bound_and_expire(api: Api, name: str) -> None:
    dim = 8
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {
            "i": {
                "name": name,
                "dimension": dim,
                "fields": [{"name": "kind", "type": "STRING"}],
            }
        },
    )
    rng = np.random.default_rng(5)
    records = [
        {"id": f"r{i}", "vector": b64(rng.normal(size=dim)), "metadata": {"kind": f"k{i % 3}"}}
        for i in range(60)
    ]
    await api.ok(UPSERT, {"c": name, "r": records})
    q, other = rng.normal(size=dim), rng.normal(size=dim)
    base = {"c": name, "v": b64(q), "k": 10}
    cursor = (await api.ok(PAGE, base))["search"]["pageInfo"]["endCursor"]
    assert cursor
    assert (await api.ok(PAGE, {**base, "after": cursor}))["search"]["hits"]

    async def refused(variables: dict[str, Any], words: str) -> None:
        error = await api.error(PAGE, variables)
        assert error["extensions"]["code"] == "BAD_USER_INPUT", error
        assert words in error["message"], error["message"]

    payload, _, signature = cursor.partition(".")
    flipped = payload[:-3] + ("A" if payload[-3] != "A" else "B") + payload[-2:]
    await refused({**base, "after": f"{flipped}.{signature}"}, "not a cursor this server issued")
    await refused({**base, "after": cursor[:-5]}, "not a cursor this server issued")
    await refused({**base, "after": "garbage"}, "not a cursor this server issued")
    # Another search: another vector, filter, page kind or collection.
    await refused({**base, "v": b64(other), "after": cursor}, "belongs to another search")
    where = {"field": "kind", "eq": "k1"}
    await refused({**base, "w": where, "after": cursor}, "belongs to another search")
    await refused({**base, "v": None, "near": "r1", "after": cursor}, "belongs to another search")
    # Expired: a cursor signed here whose time is up.
    expired = await api.store.cursors.encode(
        SearchCursor(
            keyset=Keyset(raw=0.5, seen=("r1",), depth=10),
            snapshot=time.time() - 7200,
            expires=time.time() - 1,
            query=_digest_of(cursor),
        )
    )
    await refused({**base, "after": expired}, "expired")
    # Not with offset, nor with groupBy.
    await refused({**base, "after": cursor, "o": 5}, "after and offset")
    await refused({**base, "after": cursor, "g": {"field": "kind"}}, "groupBy")
    # groupBy takes a declared field of one value per record.
    await refused({**base, "g": {"field": "nope"}}, "not a declared field")
    await refused({**base, "g": {"field": "kind", "size": 0}}, "groupBy.size")


def _digest_of(cursor: str) -> str:
    """The query digest a cursor carries (readable: only its signature is secret)."""
    payload = cursor.partition(".")[0]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["q"])


@pytest.mark.milvus_only
async def test_pages_go_far_past_the_offset_cap(api: Api, name: str) -> None:
    """12,000 records, pages of 1,000 to 11,000 deep (offset stops at 1,000): no hit twice,
    the ranking to the index's recall."""
    dim, n = 16, 12_000
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": {"name": name, "dimension": dim}},
    )
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    for start in range(0, n, 4000):
        chunk = [
            {"id": str(i), "vector": b64(vectors[i])} for i in range(start, min(n, start + 4000))
        ]
        await api.ok(UPSERT, {"c": name, "r": chunk})
    info = await api.store.collections.get(name)
    await api.store.writer.flush(info)
    q = rng.normal(size=dim).astype(np.float32)
    walked = await pages(api, {"c": name, "v": b64(q)}, size=1000, count=11)
    ids = [h["id"] for p in walked for h in p["hits"]]
    assert len(ids) == 11_000
    assert len(set(ids)) == len(ids)
    truth = ranking(vectors, q)[:11_000]
    assert len(set(ids) & set(truth)) / 11_000 >= 0.95
    assert not any(p["explain"]["short"] for p in walked)


TEXT_PAGE = """
query($c: String!, $kw: String, $h: HybridInput, $k: Int!, $after: String) {
  search(collection: $c, keyword: $kw, hybrid: $h, topK: $k, after: $after) {
    hits { id score }
    pageInfo { hasNextPage endCursor }
  }
}
"""


@pytest.mark.sql_only
async def test_keyword_and_hybrid_searches_page_too(api: Api, name: str) -> None:
    """BM25 pages (many equal scores: texts of one length) hold every match once; RRF hybrid
    pages never repeat a hit; RELATIVE_SCORE, whose scores move with the pool, is refused."""
    dim = 8
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": {"name": name, "dimension": dim}},
    )
    rng = np.random.default_rng(9)
    records = [
        {"id": f"p{i:02d}", "vector": b64(rng.normal(size=dim)), "text": f"tool {t} number {i}"}
        for i, t in enumerate(["git", "curl", "git git", "wget"] * 15)
    ]
    await api.ok(UPSERT, {"c": name, "r": records})
    matching = {r["id"] for r in records if "git" in r["text"]}

    async def walk(variables: dict[str, Any]) -> list[str]:
        shown, after = [], None
        for _ in range(20):
            data = (await api.ok(TEXT_PAGE, {"c": name, "k": 7, "after": after, **variables}))[
                "search"
            ]
            shown += [h["id"] for h in data["hits"]]
            after = data["pageInfo"]["endCursor"]
            if not data["pageInfo"]["hasNextPage"]:
                return shown
        raise AssertionError("the walk does not end")

    by_keyword = await walk({"kw": "git"})
    assert len(by_keyword) == len(set(by_keyword))
    assert set(by_keyword) == matching
    hybrid = {"query": "git", "vector": b64(rng.normal(size=dim))}
    by_hybrid = await walk({"h": hybrid})
    assert len(by_hybrid) == len(set(by_hybrid))
    # Deeper pages widen each side's pool, which can only raise a hit's RRF score: a hit that
    # rises past the cursor is skipped, never shown twice.
    assert set(by_hybrid) <= {r["id"] for r in records}
    assert len(set(by_hybrid) & matching) >= 0.8 * len(matching)
    first = (await api.ok(TEXT_PAGE, {"c": name, "k": 7, "h": hybrid}))["search"]
    relative = {**hybrid, "fusion": "RELATIVE_SCORE"}
    error = await api.error(
        TEXT_PAGE, {"c": name, "k": 7, "h": relative, "after": first["pageInfo"]["endCursor"]}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "RELATIVE_SCORE" in error["message"]


@pytest.mark.milvus_only
@pytest.mark.parametrize("metric", ["COSINE", "L2", "IP"])
async def test_pages_of_every_metric_equal_the_exact_ranking(
    api: Api, name: str, metric: str
) -> None:
    """FLAT is exact: the pages of a walk are numpy's ranking, in order, for each metric (on a
    Milvus server, each page a range search in that metric's terms)."""
    dim, n = 8, 300
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {"i": {"name": name, "dimension": dim, "metric": metric, "index": {"type": "FLAT"}}},
    )
    vectors = np.random.default_rng(13).normal(size=(n, dim)).astype(np.float32)
    await api.ok(
        UPSERT, {"c": name, "r": [{"id": f"r{i}", "vector": b64(v)} for i, v in enumerate(vectors)]}
    )
    q = np.random.default_rng(14).normal(size=dim).astype(np.float32)
    order, _, _ = exact(vectors, q, metric)
    walked = await pages(api, {"c": name, "v": b64(q)}, size=40, count=10)
    assert [h["id"] for p in walked for h in p["hits"]] == [f"r{i}" for i in order]
    # 300 hits are within the depth a server pages by top-k: walk again with every later page
    # a range search (on Milvus Lite, which cannot range-search that deep, top-k again).
    by_range = Searcher(vectors=api.store.vectors, candidates=api.store.candidates, topk_depth=0)
    info = await api.store.collections.get(name)
    keyset: Keyset | None = None
    shown: list[str] = []
    while True:
        [hits], _ = await by_range.search(info, [q], top_k=40, after=keyset)
        shown += [h.id for h in hits]
        if len(hits) < 40:
            break
        page = [(h.id, raw_value(info.metric, h.score, h.distance)) for h in hits]
        keyset = next_keyset(page, keyset)
    assert shown == [f"r{i}" for i in order]
