"""Filters a backend cannot run, or that break a rule, are BAD_USER_INPUT naming the filter path.

Through HTTP on every cell: ``like`` patterns Milvus 2.3 cannot run (it has exact and prefix
patterns only) are refused on the Milvus server cells and run on the Milvus Lite cells (but for
those Lite's regex cannot run exactly); filters at the list and depth limits run everywhere, and
past them, or naming a non-filterable field, are refused before any store call.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.conftest import Api
from tests.integration.test_search import SEARCH, UPSERT, b64

DIM = 4
RECORDS = """query($c: String!, $w: Filter) {
  records(collection: $c, where: $w, first: 100) { totalCount edges { node { id } } }
}"""


async def create(api: Api, name: str, n: int = 30) -> np.ndarray:
    await api.ok(
        "mutation($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
        {
            "i": {
                "name": name,
                "dimension": DIM,
                "index": {"type": "FLAT"},
                "fields": [
                    {"name": "group", "type": "STRING"},
                    {"name": "n", "type": "INT"},
                    {"name": "note", "type": "STRING", "filterable": False},
                ],
            }
        },
    )
    vectors = np.random.default_rng(3).normal(size=(n, DIM)).astype(np.float32)
    records = [
        {
            "id": f"r{i:04d}",
            "vector": b64(vectors[i]),
            "metadata": {"group": "even" if i % 2 == 0 else "odd", "n": i, "note": f"note {i}"},
        }
        for i in range(n)
    ]
    await api.ok(UPSERT, {"c": name, "r": records})
    return vectors


def assert_refused(error: dict[str, Any], path: str, fragment: str) -> None:
    assert error["extensions"]["code"] == "BAD_USER_INPUT", error
    assert f"{path}: " in error["message"], error
    assert fragment in error["message"], error
    assert [p["path"] for p in error["extensions"]["problems"]] == [path], error


# -- like: what Milvus 2.3 can run -------------------------------------------------------------

PREFIX_ONLY = "only supports exact and prefix patterns"
LITE_REGEX = "cannot run a like pattern that ends with _ or a newline"
# The weakest `like` support of a backend that runs a pattern: "prefix" (every backend), "lite"
# (Milvus Lite and servers with full LIKE), "full" (Lite refuses: its LIKE is a regex ending in
# `$`, which also matches before a final newline, so a pattern ending in _ is not exact there).
RUNS = {"prefix": {"prefix", "lite", "full"}, "lite": {"lite", "full"}, "full": {"full"}}
# (label, filter, the records it selects, the weakest support that runs it, the path to name)
LIKE_CASES: list[tuple[str, dict[str, Any], range | list[int], str, str]] = [
    ("prefix", {"field": "id", "like": "r001%"}, range(10, 20), "prefix", ""),
    ("prefix of a field", {"field": "group", "like": "ev%"}, range(0, 30, 2), "prefix", ""),
    ("exact", {"field": "id", "like": "r0007"}, [7], "prefix", ""),
    ("infix", {"field": "group", "like": "%ve%"}, range(0, 30, 2), "lite", "where.like"),
    ("suffix", {"field": "id", "like": "%1"}, [1, 11, 21], "lite", "where.like"),
    ("one character", {"field": "id", "like": "r00_3"}, [3, 13, 23], "lite", "where.like"),
    (
        "nested",
        {"and": [{"field": "n", "gte": 0}, {"not": {"field": "group", "like": "_dd"}}]},
        range(0, 30, 2),
        "lite",
        "where.and[1].not.like",
    ),
    ("ends in _", {"field": "group", "like": "od_"}, range(1, 30, 2), "full", "where.like"),
]


def outcome(body: dict[str, Any], field: str) -> Any:
    """What a query answered: the ids it selected, or its error's code, the paths its problems
    name and which of the known refusals its message gives."""
    if body.get("errors"):
        error = body["errors"][0]
        paths = [p["path"] for p in error["extensions"].get("problems", [])]
        known = [m for m in (PREFIX_ONLY, LITE_REGEX) if m in error["message"]]
        return (error["extensions"]["code"], paths, known or error["message"])
    if field == "search":
        return {h["id"] for h in body["data"]["search"]["hits"]}
    return {e["node"]["id"] for e in body["data"]["records"]["edges"]}


async def test_like_runs_where_the_backend_can_and_is_refused_naming_the_path_elsewhere(
    api: Api, name: str, milvus_uri: str
) -> None:
    # The Milvus server of the suite is 2.3: exact and prefix patterns only.
    support = "prefix" if milvus_uri.startswith("http") else "lite"
    await create(api, name)
    searched: dict[str, Any] = {}
    listed: dict[str, Any] = {}
    want_searched: dict[str, Any] = {}
    want_listed: dict[str, Any] = {}
    for label, where, selected, needs, path in LIKE_CASES:
        ids = {f"r{i:04d}" for i in selected}
        body = await api.post(SEARCH, {"c": name, "v": b64(np.ones(DIM)), "k": 100, "w": where})
        searched[label] = outcome(body, "search")
        if support in RUNS[needs]:
            want_searched[label] = ids
        else:
            refusal = PREFIX_ONLY if support == "prefix" else LITE_REGEX
            want_searched[label] = ("BAD_USER_INPUT", [path], [refusal])
        # The records listing filters in SQL, which runs every pattern on every backend.
        listed[label] = outcome(await api.post(RECORDS, {"c": name, "w": where}), "records")
        want_listed[label] = ids
    assert searched == want_searched
    assert listed == want_listed
    assert api.store.vectors.capabilities.like == support


# -- limits and non-filterable fields ----------------------------------------------------------


def nested_not(depth: int) -> dict[str, Any]:
    """A filter ``depth`` levels deep: ``depth - 1`` nots around a leaf."""
    node: dict[str, Any] = {"field": "n", "lt": 5}
    for _ in range(depth - 1):
        node = {"not": node}
    return node


@pytest.mark.validation
async def test_filter_limits_and_non_filterable_fields_are_bad_user_input(
    api: Api, name: str
) -> None:
    await create(api, name, n=10)
    max_list, max_depth = api.settings.max_filter_list, api.settings.max_filter_depth
    cases: list[tuple[dict[str, Any], str, str]] = [
        (
            {"field": "n", "in": list(range(max_list + 1))},
            "where.in",
            f"more than {max_list} values",
        ),
        (
            {"and": [{"field": "n", "gte": 0}, {"field": "id", "notIn": ["x"] * (max_list + 1)}]},
            "where.and[1].notIn",
            f"more than {max_list} values",
        ),
        (
            {"or": [{"field": "n", "eq": i} for i in range(max_list + 1)]},
            "where.or",
            f"more than {max_list} filters",
        ),
        (
            nested_not(max_depth + 1),
            "where" + ".not" * max_depth,
            f"deeper than {max_depth} levels",
        ),
        (
            {"and": [{"field": "n", "gte": 0}, nested_not(max_depth)]},
            "where.and[1]" + ".not" * (max_depth - 1),
            f"deeper than {max_depth} levels",
        ),
        ({"field": "note", "eq": "note 1"}, "where.field", "'note' is not filterable"),
        (
            {"or": [{"field": "n", "eq": 1}, {"not": {"field": "note", "isNull": True}}]},
            "where.or[1].not.field",
            "'note' is not filterable",
        ),
    ]
    for where, path, fragment in cases:
        error = await api.error(SEARCH, {"c": name, "v": b64(np.ones(DIM)), "w": where})
        assert_refused(error, path, fragment)
        error = await api.error(RECORDS, {"c": name, "w": where})
        assert_refused(error, path, fragment)


async def test_filters_at_the_limits_run(api: Api, name: str) -> None:
    await create(api, name, n=10)
    max_list, max_depth = api.settings.max_filter_list, api.settings.max_filter_depth
    every_but_last = [{"field": "n", "ne": 1000 + i} for i in range(max_list - 1)]
    cases: dict[str, tuple[dict[str, Any], range]] = {
        "in": ({"field": "n", "in": list(range(max_list))}, range(10)),
        "or": ({"or": [{"field": "n", "eq": i} for i in range(max_list)]}, range(10)),
        "and": ({"and": [*every_but_last, {"field": "n", "lt": 3}]}, range(3)),
        # max_depth - 1 nots around n < 5: an odd count negates it
        "depth": (nested_not(max_depth), range(5, 10) if max_depth % 2 == 0 else range(5)),
    }
    got: dict[str, Any] = {}
    want: dict[str, Any] = {}
    for label, (where, selected) in cases.items():
        body = await api.post(SEARCH, {"c": name, "v": b64(np.ones(DIM)), "k": 100, "w": where})
        got[label] = outcome(body, "search")
        # SQL gets the same filter: for records, and for the exact search routes.
        got[f"{label} (records)"] = outcome(
            await api.post(RECORDS, {"c": name, "w": where}), "records"
        )
        want[label] = want[f"{label} (records)"] = {f"r{i:04d}" for i in selected}
    assert got == want
