"""Keyword (BM25) and hybrid search (issue 22) on every backend cell: the same scores as a
plain-Python BM25, identifiers found by parts and whole, alpha's ends equal to the single-sided
searches, filters and tenants on both sides, deletes and rewrites gone from the keyword index at
once, the errors, and relevance on the shared dataset."""

from __future__ import annotations

import base64
import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from store.analyzer import term_counts
from tests.conftest import Api

MODEL = "all-MiniLM-L6-v2"
DIM = 8

CREATE = "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }"
UPSERT = """
mutation($c: String!, $r: [RecordInput!]!) { upsertRecords(collection: $c, records: $r) {
  upserted } }
"""
DELETE = """
mutation($c: String!, $ids: [ID!], $t: String) {
  deleteRecords(collection: $c, ids: $ids, tenant: $t) { deleted } }
"""
SEARCH = """
query($c: String!, $kw: String, $h: HybridInput, $v: Vector, $k: Int! = 10, $o: Int! = 0,
      $w: Filter, $t: String) {
  search(collection: $c, keyword: $kw, hybrid: $h, vector: $v, topK: $k, offset: $o, where: $w,
         tenant: $t) {
    hits { id score distance scores { vector keyword vectorRank keywordRank } }
    explain { route candidates keywordMs keywordCandidates vectorCandidates milvusMs }
  }
}
"""
BATCH = """
query($c: String!, $kws: [String!], $hs: [HybridInput!], $k: Int! = 10) {
  searchBatch(collection: $c, keywords: $kws, hybrids: $hs, topK: $k) { hits { id score } }
}
"""

# Texts with identifiers, repeated words and lengths that make BM25's parts matter.
TEXTS = {
    "libssl-dev": "libssl-dev: Secure Sockets Layer toolkit - development files",
    "libssl3": "libssl3: Secure Sockets Layer toolkit - shared libraries",
    "libssl-doc": "libssl-doc: Secure Sockets Layer toolkit - development documentation",
    "python3-requests": "python3-requests: elegant and simple HTTP library for Python3",
    "python3-httmock": "python3-httmock: Mocking library for python3-requests",
    "python3-urllib3": "python3-urllib3: HTTP library with thread-safe connection pooling",
    "curl": "curl: command line tool for transferring data with URL syntax",
    "libcurl4": "libcurl4: easy-to-use client-side URL transfer library",
    "wget": "wget: retrieves files from the web",
    "git": "git: fast, scalable, distributed revision control system",
    "git-man": "git-man: fast, scalable, distributed revision control system (manual pages)",
    "tig": "tig: ncurses-based text-mode interface for git",
    "g++": "g++: GNU C++ compiler",
    "STRASSE": "Straße: a street, a STREET and a street again",
    "empty": "",
    "none": None,
}


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


def vectors(n: int, seed: int = 7) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def reference_bm25(texts: dict[str, str | None], query: str) -> list[tuple[str, float]]:
    """BM25 (k1 = 1.2, b = 0.75, Lucene's idf) written out plainly, over the same terms."""
    docs = {i: term_counts(t) for i, t in texts.items()}
    docs = {i: c for i, c in docs.items() if c}
    n = len(docs)
    avg = sum(sum(c.values()) for c in docs.values()) / n
    scores: Counter[str] = Counter()
    for term, qtf in term_counts(query).items():
        df = sum(1 for c in docs.values() if term in c)
        if not df:
            continue
        idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
        for i, c in docs.items():
            if term in c:
                length = sum(c.values())
                tf = c[term]
                scores[i] += qtf * idf * tf * 2.2 / (tf + 1.2 * (1 - 0.75 + 0.75 * length / avg))
    return sorted(scores.items(), key=lambda x: (-round(x[1], 9), x[0]))


async def create(api: Api, name: str, **extra: Any) -> None:
    fields = [{"name": "kind", "type": "STRING"}]
    await api.ok(CREATE, {"i": {"name": name, "dimension": DIM, "fields": fields, **extra}})


async def load(api: Api, name: str, texts: dict[str, str | None], **extra: Any) -> np.ndarray:
    v = vectors(len(texts))
    records = [
        {"id": i, "vector": b64(v[n]), "text": t, "metadata": {"kind": "odd" if n % 2 else "even"}}
        for n, (i, t) in enumerate(texts.items())
    ]
    for r in records:
        r.update(extra)
    await api.ok(UPSERT, {"c": name, "r": records})
    return v


async def search(api: Api, name: str, **variables: Any) -> dict[str, Any]:
    data = await api.ok(SEARCH, {"c": name, **variables})
    return data["search"]  # type: ignore[no-any-return]


def ids(result: dict[str, Any]) -> list[str]:
    return [h["id"] for h in result["hits"]]


async def test_keyword_scores_are_plain_bm25(api: Api, name: str) -> None:
    await create(api, name)
    await load(api, name, TEXTS)
    for query in ["libssl-dev", "secure toolkit", "http library", "git git", "g++", "STREET"]:
        expected = reference_bm25(TEXTS, query)
        found = await search(api, name, kw=query, k=20)
        assert ids(found) == [i for i, _ in expected], query
        for hit, (_, score) in zip(found["hits"], expected, strict=True):
            assert hit["score"] == pytest.approx(score, rel=1e-9)
            assert hit["distance"] == -hit["score"]
            assert hit["scores"]["keyword"] == hit["score"]
            assert hit["scores"]["vector"] is None
            assert hit["scores"]["vectorRank"] is None
        assert [h["scores"]["keywordRank"] for h in found["hits"]] == list(
            range(1, len(expected) + 1)
        )
        assert found["explain"]["route"] == "keyword"
        assert found["explain"]["keywordCandidates"] == len(expected)
        assert found["explain"]["keywordMs"] > 0


async def test_identifiers_are_found_by_parts_and_whole(api: Api, name: str) -> None:
    await create(api, name)
    await load(api, name, TEXTS)
    assert ids(await search(api, name, kw="libssl-dev"))[0] == "libssl-dev"
    assert ids(await search(api, name, kw="LIBSSL-DEV"))[0] == "libssl-dev"
    assert set(ids(await search(api, name, kw="libssl"))) == {"libssl-dev", "libssl-doc"}
    assert "python3-requests" in ids(await search(api, name, kw="requests"))
    assert ids(await search(api, name, kw="g++")) == ["g++"]
    assert ids(await search(api, name, kw="strasse")) == ["STRASSE"]  # NFKC + casefold
    # Offset pages through the same ranking.
    full = ids(await search(api, name, kw="library toolkit", k=6))
    assert ids(await search(api, name, kw="library toolkit", k=3, o=3)) == full[3:]


async def test_alpha_one_is_vector_search_and_zero_is_keyword_search(api: Api, name: str) -> None:
    await create(api, name)
    v = await load(api, name, TEXTS)
    query = b64(v[3] + 0.3 * v[5])
    by_vector = await search(api, name, v=query, k=5)
    by_keyword = await search(api, name, kw="library http", k=5)
    for fusion in ("RRF", "RELATIVE_SCORE"):
        one = await search(
            api, name, h={"query": "library http", "vector": query, "alpha": 1, "fusion": fusion},
            k=5,
        )  # fmt: skip
        assert ids(one) == ids(by_vector), fusion
        assert [h["scores"]["vector"] for h in one["hits"]] == pytest.approx(
            [h["score"] for h in by_vector["hits"]]
        )
        zero = await search(
            api, name, h={"query": "library http", "vector": query, "alpha": 0, "fusion": fusion},
            k=5,
        )  # fmt: skip
        assert ids(zero) == ids(by_keyword), fusion
        assert [h["scores"]["keyword"] for h in zero["hits"]] == [
            h["score"] for h in by_keyword["hits"]
        ]
    half = await search(api, name, h={"query": "library http", "vector": query}, k=20)
    explain = half["explain"]
    assert explain["keywordCandidates"] == by_keyword["explain"]["keywordCandidates"]
    assert explain["vectorCandidates"] == len(TEXTS)
    assert explain["milvusMs"] > 0
    # RRF with alpha 0.5: each side adds 0.5 / (60 + rank) where it found the hit.
    for h in half["hits"]:
        s = h["scores"]
        expected = sum(0.5 / (60 + r) for r in (s["vectorRank"], s["keywordRank"]) if r is not None)
        assert h["score"] == pytest.approx(expected)
    # Found by both sides beats found by one at the same rank.
    both = [h for h in half["hits"] if None not in (h["scores"]["vectorRank"],
                                                   h["scores"]["keywordRank"])]  # fmt: skip
    assert both
    assert half["hits"][0]["id"] in {h["id"] for h in both}


async def test_search_batch_runs_keyword_and_hybrid_queries(api: Api, name: str) -> None:
    await create(api, name)
    v = await load(api, name, TEXTS)
    data = await api.ok(BATCH, {"c": name, "kws": ["libssl-dev", "wget"], "k": 3})
    assert [ids(r)[0] for r in data["searchBatch"]] == ["libssl-dev", "wget"]
    hybrids = [{"query": "curl", "vector": b64(v[6]), "alpha": 0.5},
               {"query": "git", "vector": b64(v[9]), "alpha": 0.0}]  # fmt: skip
    data = await api.ok(BATCH, {"c": name, "hs": hybrids, "k": 3})
    single = [await search(api, name, h=h, k=3) for h in hybrids]
    assert [ids(r) for r in data["searchBatch"]] == [ids(s) for s in single]


async def test_filters_and_tenants_apply_to_both_sides(api: Api, name: str) -> None:
    await create(api, name, multiTenant=True)
    texts = {"a": "red apple pie", "b": "red apple tart", "c": "green apple", "d": "red car"}
    v = await load(api, name, texts, tenant="alice")
    await load(api, name, {"x": "red apple red apple", "y": "apple apple apple"}, tenant="bob")
    alice = await search(api, name, kw="red apple", t="alice", k=10)
    assert set(ids(alice)) == {"a", "b", "c", "d"}
    # Bob's records change neither alice's hits nor her scores: statistics are per tenant.
    expected = reference_bm25(texts, "red apple")
    assert [h["score"] for h in alice["hits"]] == pytest.approx([s for _, s in expected])
    odd = {"field": "kind", "eq": "odd"}  # b and d
    assert set(ids(await search(api, name, kw="red apple", t="alice", w=odd))) == {"b", "d"}
    # The vector side is filtered too: the query vector is a's, which the filter drops.
    hybrid = await search(
        api, name, h={"query": "red apple", "vector": b64(v[0]), "alpha": 0.9}, t="alice", w=odd
    )
    assert set(ids(hybrid)) == {"b", "d"}
    bob = await search(api, name, h={"query": "apple", "vector": b64(v[0])}, t="bob")
    assert set(ids(bob)) == {"x", "y"}


async def test_deleted_and_rewritten_records_leave_the_keyword_index(api: Api, name: str) -> None:
    await create(api, name)
    await load(api, name, {"a": "walrus carpenter", "b": "walrus", "c": "oysters"})
    assert ids(await search(api, name, kw="walrus")) == ["b", "a"]
    await api.ok(DELETE, {"c": name, "ids": ["b"]})
    after = await search(api, name, kw="walrus")
    assert ids(after) == ["a"]
    # The statistics follow: a is now the only record with the term in a corpus of two.
    assert after["hits"][0]["score"] == pytest.approx(
        reference_bm25({"a": "walrus carpenter", "c": "oysters"}, "walrus")[0][1]
    )
    await load(api, name, {"a": "carpenter only"})  # a new text replaces the old terms
    assert ids(await search(api, name, kw="walrus")) == []
    assert ids(await search(api, name, kw="carpenter")) == ["a"]


@pytest.mark.validation
async def test_keyword_and_hybrid_errors(api: Api, name: str) -> None:
    await create(api, name)
    v = await load(api, name, {"a": "alpha", "b": None})
    bad = [
        ({"kw": "alpha", "v": b64(v[0])}, "exactly one of"),
        ({"kw": "alpha", "h": {"query": "alpha", "vector": b64(v[0])}}, "exactly one of"),
        ({"kw": ""}, "keyword is empty"),
        ({"kw": "   "}, "keyword is empty"),
        ({"kw": "?!-"}, "no terms"),
        ({"kw": " ".join(f"w{i}" for i in range(65))}, "distinct terms"),
        ({"h": {"query": "", "vector": b64(v[0])}}, "hybrid.query is empty"),
        ({"h": {"query": "alpha", "vector": b64(v[0]), "alpha": 1.5}}, "alpha must be in"),
        ({"h": {"query": "alpha", "vector": b64(v[0][:4])}}, "dimension is 4, expected 8"),
        ({"h": {"query": "alpha"}}, "has no model"),  # no vector, and no embedder for it
    ]
    for variables, message in bad:
        error = await api.error(SEARCH, {"c": name, **variables})
        assert error["extensions"]["code"] == "BAD_USER_INPUT", variables
        assert message in error["message"], (variables, error["message"])
    params = await api.error(
        'query($c: String!) { search(collection: $c, keyword: "a", params: {ef: 64}) { tookMs } }',
        {"c": name},
    )
    assert params["extensions"]["code"] == "BAD_USER_INPUT"
    model = await api.error(
        'query($c: String!) { search(collection: $c, keyword: "a", model: "m") { tookMs } }',
        {"c": name},
    )
    assert model["extensions"]["code"] == "BAD_USER_INPUT"
    batch = await api.error(BATCH, {"c": name, "kws": ["alpha"], "hs": [{"query": "alpha"}]})
    assert batch["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.validation
async def test_a_collection_without_text_finds_nothing_by_keyword(api: Api, name: str) -> None:
    await create(api, name)
    await load(api, name, {"a": None, "b": ""})
    found = await search(api, name, kw="anything")
    assert found["hits"] == []
    assert found["explain"]["keywordCandidates"] == 0


async def test_package_names_rank_first_by_keyword_and_top_three_in_hybrid(
    api: Api, name: str, debian_slice: tuple[Any, Any, list[dict[str, Any]]]
) -> None:
    """On 5,000 records of the shared dataset, exact package names with a joiner (the
    identifiers keyword search is for) by keyword alone, and in hybrid mode with the query
    embedded by the collection's model."""
    base, _, records = debian_slice
    await api.ok(CREATE, {"i": {"name": name, "dimension": 384, "model": {"name": MODEL}}})
    for start in range(0, len(records), 1000):
        chunk = [
            {"id": r["id"], "vector": b64(base[start + n]), "text": r["text"]}
            for n, r in enumerate(records[start : start + 1000])
        ]
        await api.ok(UPSERT, {"c": name, "r": chunk})
    joined = [r["id"] for r in records if "-" in r["id"]]
    names = joined[:: len(joined) // 25][:25]  # CI time: 25 of about 4,000
    keyword_first = hybrid_top3 = 0
    for package in names:
        keyword_first += ids(await search(api, name, kw=package, k=1)) == [package]
        hybrid_top3 += package in ids(await search(api, name, h={"query": package}, k=3))
    assert keyword_first == len(names)
    assert hybrid_top3 == len(names)


async def test_records_of_an_earlier_version_are_indexed_at_start_up(api: Api, name: str) -> None:
    """A database written before the keyword index: the start-up migration indexes it."""
    from sqlalchemy import text

    from store.sql.engines import create_tables

    await create(api, name)
    await load(api, name, TEXTS)
    expected = ids(await search(api, name, kw="secure library", k=20))
    async with api.store.engine.begin() as conn:
        for table in ("vq_keyword_posting", "vq_keyword_stats"):
            await conn.execute(text(f"DELETE FROM {table} WHERE collection = :c"), {"c": name})
    assert ids(await search(api, name, kw="secure library")) == []
    await create_tables(api.store.engine)  # what every process runs at start-up
    assert ids(await search(api, name, kw="secure library", k=20)) == expected
