"""Text in (issue 20): the server embeds record text and query text with the collection's own
model, the packaged all-MiniLM-L6-v2, on every backend cell."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from typing import Any

import numpy as np
import pytest

from tests.conftest import Api

MODEL = "all-MiniLM-L6-v2"

CREATE = """
mutation($i: CreateCollectionInput!) {
  createCollection(input: $i) { name dimension model { name embeddedByServer } }
}
"""
UPSERT = """
mutation($c: String!, $r: [RecordInput!]!, $a: Boolean! = true) {
  upsertRecords(collection: $c, records: $r, atomic: $a) {
    upserted ids errors { index id code message }
  }
}
"""
SEARCH_TEXT = """
query($c: String!, $q: String, $v: Vector, $w: Filter, $k: Int! = 10) {
  search(collection: $c, text: $q, vector: $v, where: $w, topK: $k) {
    hits { id score record { text } }
  }
}
"""
RECORD = "query($c: String!, $id: ID!) { record(collection: $c, id: $id) { text vector } }"


def b64(v: np.ndarray) -> str:
    return base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode()


async def create(api: Api, name: str, **extra: Any) -> dict[str, Any]:
    spec = {"name": name, "model": {"name": MODEL}, **extra}
    created = await api.ok(CREATE, {"i": spec})
    return created["createCollection"]  # type: ignore[no-any-return]


async def test_embedders_lists_the_packaged_model(api: Api) -> None:
    data = await api.ok("{ embedders { name provider dimension maxInput } }")
    assert {"name": MODEL, "provider": "sentence-transformers", "dimension": 384,
            "maxInput": 256} in data["embedders"]  # fmt: skip


@pytest.mark.validation
async def test_a_collection_of_the_model_takes_its_dimension(api: Api, name: str) -> None:
    created = await create(api, name)
    assert created["dimension"] == 384
    assert created["model"] == {"name": MODEL, "embeddedByServer": True}


@pytest.mark.validation
async def test_wrong_dimension_for_the_model_is_refused_at_creation(api: Api, name: str) -> None:
    error = await api.error(
        CREATE, {"i": {"name": name, "dimension": 128, "model": {"name": MODEL}}}
    )
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "384" in error["message"]
    assert await api.ok("query($n: String!) { collection(name: $n) { name } }", {"n": name}) == {
        "collection": None
    }


@pytest.mark.validation
async def test_no_dimension_and_no_embedder_is_refused(api: Api, name: str) -> None:
    error = await api.error(CREATE, {"i": {"name": name, "model": {"name": "someone-elses"}}})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "dimension is required" in error["message"]


async def test_a_text_only_record_is_stored_with_the_models_embedding(
    api: Api, name: str, minilm: Any
) -> None:
    await create(api, name)
    texts = ["vim: Vi IMproved - enhanced vi editor", "curl: command line tool for transferring"]
    vector = np.ones(384, dtype=np.float32) / np.sqrt(384)
    records = [
        {"id": "a", "text": texts[0]},
        {"id": "b", "text": texts[1]},
        {"id": "c", "text": "keeps its own vector", "vector": b64(vector)},
    ]
    result = await api.ok(UPSERT, {"c": name, "r": records})
    assert result["upsertRecords"]["upserted"] == 3
    expected = await minilm.embed(texts)
    for rid, want in zip(["a", "b"], expected, strict=True):
        stored = (await api.ok(RECORD, {"c": name, "id": rid}))["record"]
        assert np.allclose(np.asarray(stored["vector"], dtype=np.float32), want, atol=1e-6)
    kept = (await api.ok(RECORD, {"c": name, "id": "c"}))["record"]
    assert np.allclose(kept["vector"], vector, atol=1e-7)
    hits = (await api.ok(SEARCH_TEXT, {"c": name, "q": "a text editor", "k": 1}))["search"]
    assert hits["hits"][0]["id"] == "a"


async def test_text_longer_than_the_model_reads_is_truncated_not_refused(
    api: Api, name: str
) -> None:
    """As documented (README: "reads 256 word pieces; longer text is truncated"): over-long text
    is embedded from its first 256 word pieces, so what follows them cannot change the vector."""
    await create(api, name)
    long = "word " * 300  # 300 word pieces (and [CLS]/[SEP]): past the 256 the model reads
    short = "word " * 200  # within the limit: the tail still counts
    records = [
        {"id": "long-cats", "text": long + "cats purring on a sofa"},
        {"id": "long-quarks", "text": long + "quantum chromodynamics of quarks"},
        {"id": "short-cats", "text": short + "cats purring on a sofa"},
        {"id": "short-quarks", "text": short + "quantum chromodynamics of quarks"},
    ]
    result = await api.ok(UPSERT, {"c": name, "r": records})
    assert result["upsertRecords"]["upserted"] == 4
    vectors = {}
    for record in records:
        stored = (await api.ok(RECORD, {"c": name, "id": record["id"]}))["record"]
        assert stored["text"] == record["text"]  # the record keeps its whole text
        vectors[record["id"]] = np.asarray(stored["vector"], dtype=np.float32)
    assert np.allclose(vectors["long-cats"], vectors["long-quarks"], atol=1e-6)
    assert not np.allclose(vectors["short-cats"], vectors["short-quarks"], atol=1e-3)
    # A query past the limit is truncated the same way: it finds both long records, tied.
    query = long + "something else entirely"
    hits = (await api.ok(SEARCH_TEXT, {"c": name, "q": query, "k": 2}))["search"]["hits"]
    assert {h["id"] for h in hits} == {"long-cats", "long-quarks"}
    assert hits[0]["score"] == pytest.approx(hits[1]["score"], abs=1e-5)


@pytest.mark.validation
async def test_a_record_with_neither_vector_nor_text_writes_nothing(api: Api, name: str) -> None:
    await create(api, name)
    records = [{"id": "ok", "text": "fine"}, {"id": "empty", "metadata": {"k": 1}}]
    error = await api.error(UPSERT, {"c": name, "r": records})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["extensions"]["problems"] == [
        {"index": 1, "id": "empty", "message": "record has neither vector nor text"}
    ]
    assert (await api.ok(RECORD, {"c": name, "id": "ok"}))["record"] is None
    partial = await api.ok(UPSERT, {"c": name, "r": records, "a": False})
    assert partial["upsertRecords"]["ids"] == ["ok"]
    assert [e["code"] for e in partial["upsertRecords"]["errors"]] == ["BAD_USER_INPUT"]


@pytest.mark.validation
async def test_text_needs_an_embedder_for_the_collection(api: Api, name: str) -> None:
    await api.ok(CREATE, {"i": {"name": name, "dimension": 4, "model": {"name": "elsewhere"}}})
    created = await api.ok(
        "query($n: String!) { collection(name: $n) { model { embeddedByServer } } }", {"n": name}
    )
    assert created["collection"]["model"]["embeddedByServer"] is False
    error = await api.error(UPSERT, {"c": name, "r": [{"id": "x", "text": "hello"}]})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "has no embedder" in error["extensions"]["problems"][0]["message"]
    error = await api.error(SEARCH_TEXT, {"c": name, "q": "hello"})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert MODEL in error["extensions"]["embedders"]


@pytest.mark.validation
@pytest.mark.parametrize(
    "variables",
    [
        {},  # none of vector / nearId / text
        {"q": "two at once", "v": [0.1] * 384},
        {"q": "   "},
    ],
    ids=["none", "text-and-vector", "blank-text"],
)
async def test_search_takes_exactly_one_query(
    api: Api, name: str, variables: dict[str, Any]
) -> None:
    await create(api, name)
    error = await api.error(SEARCH_TEXT, {"c": name, **variables})
    assert error["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.validation
async def test_search_batch_takes_vectors_or_texts(api: Api, name: str) -> None:
    await create(api, name)
    query = """query($c: String!, $v: [Vector!], $t: [String!]) {
      searchBatch(collection: $c, vectors: $v, texts: $t) { hits { id } } }"""
    both = await api.error(query, {"c": name, "v": [[0.1] * 384], "t": ["x"]})
    assert both["extensions"]["code"] == "BAD_USER_INPUT"
    neither = await api.error(query, {"c": name})
    assert neither["extensions"]["code"] == "BAD_USER_INPUT"


def _exact(base: np.ndarray, query: np.ndarray, mask: np.ndarray, k: int) -> list[int]:
    normed = base / np.linalg.norm(base, axis=1, keepdims=True)
    scores = np.where(mask, normed @ query, -np.inf)
    return [int(i) for i in np.argsort(-scores, kind="stable")[:k]]


QUERIES = [
    "a fast text editor for programmers",
    "library for reading and writing image files",
    "python bindings for a database",
    "command line tool to download files over http",
]


async def test_search_by_text_agrees_with_numpy_on_the_shared_dataset(
    api: Api,
    name: str,
    minilm: Any,
    debian_slice: tuple[np.ndarray, np.ndarray, list[dict[str, Any]]],
) -> None:
    base, _, records = debian_slice
    base, records = base[:2000], records[:2000]
    await create(
        api,
        name,
        index={"type": "FLAT"},
        fields=[{"name": "section", "type": "STRING"}],
    )
    sections = np.array([r["metadata"]["section"] for r in records])
    section = Counter(sections.tolist()).most_common(3)[2][0]  # a few percent of the rows
    for start in range(0, len(records), 500):
        batch = [
            {
                "id": r["id"],
                "text": r["text"],
                "vector": b64(base[start + i]),
                "metadata": {"section": r["metadata"]["section"]},
            }
            for i, r in enumerate(records[start : start + 500])
        ]
        await api.ok(UPSERT, {"c": name, "r": batch})
    query_vectors = await minilm.embed(QUERIES)
    everything = np.ones(len(records), dtype=bool)
    for text, query in zip(QUERIES, query_vectors, strict=True):
        for where, mask in (
            (None, everything),
            ({"field": "section", "eq": section}, sections == section),
        ):
            found = await api.ok(SEARCH_TEXT, {"c": name, "q": text, "w": where})
            ids = [h["id"] for h in found["search"]["hits"]]
            expected = [records[i]["id"] for i in _exact(base, query, mask, 10)]
            # The same top 10 as exact search over the stored vectors (FLAT index; an equal
            # score may swap two neighbours).
            assert len(set(ids) & set(expected)) >= 9, (text, where, ids, expected)
            assert ids[0] == expected[0]


async def test_search_batch_by_texts_answers_in_order(api: Api, name: str) -> None:
    await create(api, name)
    texts = ["apple pie recipe", "kernel module for wifi", "jazz music player"]
    await api.ok(UPSERT, {"c": name, "r": [{"id": str(i), "text": t} for i, t in enumerate(texts)]})
    data = await api.ok(
        """query($c: String!, $t: [String!]) {
          searchBatch(collection: $c, texts: $t, topK: 1) { hits { id } } }""",
        {"c": name, "t": list(reversed(texts))},
    )
    assert [r["hits"][0]["id"] for r in data["searchBatch"]] == ["2", "1", "0"]


@pytest.mark.milvus_only
async def test_concurrent_searches_by_text_share_model_calls(api: Api, name: str) -> None:
    await create(api, name)
    await api.ok(UPSERT, {"c": name, "r": [{"id": "x", "text": "something to find"}]})
    served = api.store.embedders.find(MODEL)
    before = served.model_calls
    n = 16
    texts = [f"query number {i} about packages" for i in range(n)]
    answers = await asyncio.gather(
        *(api.ok(SEARCH_TEXT, {"c": name, "q": t, "k": 1}) for t in texts)
    )
    assert all(a["search"]["hits"][0]["id"] == "x" for a in answers)
    calls = served.model_calls - before
    assert 1 <= calls < n, calls
    # The same texts again: all from the LRU, no model call.
    again = served.model_calls
    await asyncio.gather(*(api.ok(SEARCH_TEXT, {"c": name, "q": t, "k": 1}) for t in texts))
    assert served.model_calls == again
