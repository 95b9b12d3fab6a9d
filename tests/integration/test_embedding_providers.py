"""The ``openai`` provider against a real OpenAI-compatible endpoint on loopback (serving the
local model), and an app whose embedders are remote: answers, retries, timeouts, 5xx, a wrong
dimension, a wrong API key, and an embedder that is down (nothing written)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from store import EmbedderSpec, InvalidInput, OpenAIEmbedder, Unavailable, parse_embedders
from tests.conftest import Api, fresh_database, make_settings, running_api
from tests.embedding_server import EmbeddingServer, serve_embeddings

TEXTS = ["a window manager", "postgres client library", "fonts for chinese text"]
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, the connection is refused


@pytest.fixture(scope="module")
async def endpoint(minilm: Any) -> AsyncIterator[EmbeddingServer]:
    await minilm.load()  # before any request: the tests' timeouts are for answers, not loading
    with serve_embeddings(minilm) as server:
        yield server


@pytest.fixture
def server(endpoint: EmbeddingServer) -> EmbeddingServer:
    """The endpoint with its default behaviour (each test sets what it needs)."""
    b = endpoint.behaviour
    b.api_key, b.delay, b.fail_next, b.dimension, b.requests = None, 0.0, 0, None, 0
    return endpoint


def spec(url: str, **overrides: Any) -> EmbedderSpec:
    values: dict[str, Any] = {
        "name": "remote",
        "provider": "openai",
        "url": url,
        "model": "all-MiniLM-L6-v2",
        "dimension": 384,
        "timeout": 10.0,
        "retries": 1,
        "backoff": 0.01,
        **overrides,
    }
    [parsed] = parse_embedders(json.dumps([values]))
    return parsed


async def embed(s: EmbedderSpec, texts: list[str]) -> np.ndarray:
    embedder = OpenAIEmbedder(s)
    try:
        return await embedder.embed(texts)
    finally:
        await embedder.close()


async def test_the_endpoint_gives_the_models_vectors_in_batches(
    server: EmbeddingServer, minilm: Any
) -> None:
    vectors = await embed(spec(server.url, batch_size=2), TEXTS)
    assert np.allclose(vectors, await minilm.embed(TEXTS), atol=1e-6)
    assert server.behaviour.requests == 2  # 3 texts in batches of 2


async def test_5xx_is_retried_with_backoff(server: EmbeddingServer) -> None:
    server.behaviour.fail_next = 2
    vectors = await embed(spec(server.url, retries=2), TEXTS)
    assert vectors.shape == (3, 384)
    assert server.behaviour.requests == 3


async def test_5xx_beyond_the_retries_is_unavailable(server: EmbeddingServer) -> None:
    server.behaviour.fail_next = 10
    with pytest.raises(Unavailable, match="after 2 attempts \\(HTTP 503\\)"):
        await embed(spec(server.url, retries=1), TEXTS)
    assert server.behaviour.requests == 2


async def test_a_slow_endpoint_times_out(server: EmbeddingServer) -> None:
    server.behaviour.delay = 2.0
    with pytest.raises(Unavailable, match=r"no answer within 0\.2 s"):
        await embed(spec(server.url, timeout=0.2, retries=0), TEXTS)


async def test_a_wrong_dimension_is_never_used(server: EmbeddingServer) -> None:
    server.behaviour.dimension = 100
    with pytest.raises(Unavailable, match="100-d vectors") as caught:
        await embed(spec(server.url), TEXTS)
    assert caught.value.extensions == {"expected": 384, "actual": 100}


async def test_a_wrong_api_key_is_refused(
    server: EmbeddingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.behaviour.api_key = "right-key"
    monkeypatch.setenv("VQ_TEST_EMBED_KEY", "wrong-key")
    with pytest.raises(Unavailable, match=r"refused the API key .* VQ_TEST_EMBED_KEY"):
        await embed(spec(server.url, api_key_env="VQ_TEST_EMBED_KEY"), TEXTS)
    assert server.behaviour.requests == 1  # not retried: another attempt cannot fix a key
    monkeypatch.setenv("VQ_TEST_EMBED_KEY", "right-key")
    assert (await embed(spec(server.url, api_key_env="VQ_TEST_EMBED_KEY"), TEXTS)).shape[0] == 3


async def test_an_endpoint_that_is_down_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="ConnectError"):
        await embed(spec(DEAD_URL, retries=1), TEXTS)


async def test_an_input_the_endpoint_refuses_is_bad_input(server: EmbeddingServer) -> None:
    with pytest.raises(InvalidInput, match="refused the input \\(HTTP 400\\)"):
        await embed(spec(server.url), ["fine", ""])


# --- through the API: collections whose model is remote -------------------------------------

CREATE = """mutation($n: String!, $m: String!) {
  createCollection(input: {name: $n, model: {name: $m}}) { dimension } }"""
UPSERT = """mutation($c: String!, $r: [RecordInput!]!, $a: Boolean! = true) {
  upsertRecords(collection: $c, records: $r, atomic: $a) { ids errors { index code message } } }"""
SEARCH = """query($c: String!, $q: String!) {
  search(collection: $c, text: $q, topK: 1) { hits { id } } }"""
STATS = "query($n: String!) { collection(name: $n) { stats { records } } }"


@pytest.fixture(scope="module")
async def remote_api(
    endpoint: EmbeddingServer, milvus_uri: str, database_url: str, tmp_path_factory: Any
) -> AsyncIterator[Api]:
    """An app whose embedders are the endpoint ("remote") and one that is down ("dead")."""
    embedders = [
        {"name": "remote", "provider": "openai", "url": endpoint.url, "model": "m",
         "dimension": 384},
        {"name": "dead", "provider": "openai", "url": DEAD_URL, "model": "m", "dimension": 384,
         "timeout": 0.5, "retries": 1, "backoff": 0.01},
    ]  # fmt: skip
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    directory: Path = tmp_path_factory.mktemp("remote-api")
    async with (
        fresh_database(kind, directory) as url,
        running_api(
            make_settings(milvus_uri=milvus_uri, database_url=url, embedders=json.dumps(embedders))
        ) as api,
    ):
        yield api


@pytest.mark.sql_only
async def test_a_remote_model_embeds_records_and_queries(
    remote_api: Api, server: EmbeddingServer, name: str
) -> None:
    listed = await remote_api.ok("{ embedders { name provider dimension } }")
    assert {"name": "remote", "provider": "openai", "dimension": 384} in listed["embedders"]
    assert (await remote_api.ok(CREATE, {"n": name, "m": "remote"}))["createCollection"] == {
        "dimension": 384
    }
    records = [{"id": str(i), "text": t} for i, t in enumerate(TEXTS)]
    assert (await remote_api.ok(UPSERT, {"c": name, "r": records}))["upsertRecords"]["ids"] == [
        "0",
        "1",
        "2",
    ]
    found = await remote_api.ok(SEARCH, {"c": name, "q": "typefaces for hanzi"})
    assert found["search"]["hits"] == [{"id": "2"}]


@pytest.mark.sql_only
async def test_an_embedder_that_is_down_writes_nothing(remote_api: Api, name: str) -> None:
    await remote_api.ok(CREATE, {"n": name, "m": "dead"})
    vector = [0.05] * 384
    records = [{"id": "v", "vector": vector}, {"id": "t", "text": "needs the model"}]
    error = await remote_api.error(UPSERT, {"c": name, "r": records})
    assert error["extensions"]["code"] == "UNAVAILABLE"
    assert "nothing was written" in error["message"]
    assert (await remote_api.ok(STATS, {"n": name}))["collection"]["stats"]["records"] == 0

    partial = (await remote_api.ok(UPSERT, {"c": name, "r": records, "a": False}))["upsertRecords"]
    assert partial["ids"] == ["v"]
    assert [(e["index"], e["code"]) for e in partial["errors"]] == [(1, "UNAVAILABLE")]
    assert (await remote_api.ok(STATS, {"n": name}))["collection"]["stats"]["records"] == 1

    error = await remote_api.error(SEARCH, {"c": name, "q": "anything"})
    assert error["extensions"]["code"] == "UNAVAILABLE"
