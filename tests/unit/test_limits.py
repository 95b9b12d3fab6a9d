"""Query cost and expansion, rate buckets, key format and hashing, access rules, production
error hygiene: no I/O."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import GraphQLError, GraphQLList, GraphQLNonNull, GraphQLObjectType, parse

from graph.http.auth import bearer_key, check_exposure
from graph.http.cost import (
    DEFAULT_FIRST,
    DEFAULT_OFFSET,
    DEFAULT_TOP_K,
    VECTOR_WEIGHT,
    Caps,
    expanded_size,
    operation_cost,
)
from graph.http.limits import MAX_JSON_DEPTH, decode_json
from graph.schema import build_schema
from graph.schema.production import harden, without_suggestions
from graph.settings import InsecureSettings
from resolvers.access import Principal, can_see, records_for, require, require_ddl, tenant_for
from resolvers.ratelimit import RateLimiter, retry_after
from store.errors import Forbidden, InvalidInput, Unauthenticated
from store.keys import KDF, KeyInfo, Scope, StoredKey, hash_secret, parse_key, secret_matches
from store.records import CollectionInfo, IndexSpec, Metric
from store.writes.incoming import IncomingRecord
from tests.conftest import make_settings

CAPS = Caps(top_k=1000, search_batch=100, page_size=1000)


def cost(query: str, variables: dict[str, Any] | None = None, name: str | None = None) -> int:
    return operation_cost(parse(query), operation_name=name, variables=variables, caps=CAPS)


# --- cost -------------------------------------------------------------------------------------


def test_plain_fields_cost_one_each() -> None:
    assert cost("{ collections { name dimension } }") == 3
    assert cost("{ a: collections { name } b: collections { name } }") == 4


def test_search_cost_grows_with_top_k_and_selected_fields() -> None:
    q = 'query($k: Int!) { search(collection: "c", vector: [1], topK: $k) { hits { id score } } }'
    # the work (k) + search + hits + k x (id + score)
    assert cost(q, {"k": 10}) == 10 + 1 + 1 + 10 * 2
    assert cost(q, {"k": 100}) == 100 + 1 + 1 + 100 * 2
    more = q.replace("id score", "id score distance record { id metadata }")
    assert cost(more, {"k": 100}) == 100 + 1 + 1 + 100 * (3 + 1 + 2)


def test_offset_counts_like_top_k_and_defaults_apply() -> None:
    q = 'query($o: Int! = 5) { search(collection: "c", nearId: "x", offset: $o) { hits { id } } }'
    assert cost(q) == (5 + DEFAULT_TOP_K) * 2 + 2
    assert cost(q, {"o": 0}) == (DEFAULT_OFFSET + DEFAULT_TOP_K) * 2 + 2


def test_batch_cost_multiplies_by_vectors() -> None:
    q = (
        'query($vs: [Vector!]!) { searchBatch(collection: "c", vectors: $vs, topK: 10) '
        "{ hits { id } } }"
    )
    # the work (V x k) + searchBatch + V x (hits + k x id)
    assert cost(q, {"vs": [[1.0]]}) == 10 + 1 + (1 + 10)
    assert cost(q, {"vs": [[1.0]] * 7}) == 7 * 10 + 1 + 7 * (1 + 10)
    literal = (
        'query { searchBatch(collection: "c", vectors: [[1], [2], [3]], topK: 10) { tookMs } }'
    )
    assert cost(literal) == 30 + 1 + 3 * 1


def test_stored_vectors_weigh_more() -> None:
    q = '{ search(collection: "c", vector: [1], topK: 10) { hits { record { vector } } } }'
    assert cost(q) == 10 + 1 + 1 + 10 * (1 + VECTOR_WEIGHT)


def test_records_cost_multiplies_edges_by_first() -> None:
    q = (
        'query($f: Int) { records(collection: "c", first: $f) '
        "{ totalCount edges { node { id } } } }"
    )
    # the work (first) + records + totalCount + edges + first x (node + id)
    assert cost(q) == DEFAULT_FIRST + 3 + DEFAULT_FIRST * 2
    assert cost(q, {"f": 100}) == 100 + 3 + 100 * 2


def test_only_root_fields_are_searches_or_pages() -> None:
    # CollectionStats.records is a count, not a page of records
    assert cost("{ collections { stats { records } } }") == 3


def test_fragments_and_inline_fragments_count_where_spread() -> None:
    q = """
    query { ...Q }
    fragment Q on Query { search(collection: "c", vector: [1], topK: 100) { ...R } }
    fragment R on SearchResult { hits { ... on Hit { id } ...S } }
    fragment S on Hit { score }
    """
    assert cost(q) == 100 + 1 + 1 + 100 * 2


def test_sizes_are_capped_and_nonsense_counts_as_the_cap() -> None:
    q = 'query($k: Int!) { search(collection: "c", vector: [1], topK: $k) { tookMs } }'
    assert cost(q, {"k": 10**9}) == cost(q, {"k": 1000}) == 1000 + 1 + 1
    assert cost(q, {"k": "many"}) == cost(q, {"k": 1000})
    assert cost(q, {"k": -5}) == 0 + 1 + 1
    assert cost(q, {"k": 2.5}) == cost(q, {"k": 1000})


def test_the_operation_named_is_the_one_costed() -> None:
    q = (
        'query A { collections { name } } query B { search(collection: "c", vector: [1], '
        "topK: 100) { tookMs } }"
    )
    assert cost(q, name="A") == 2
    assert cost(q, name="B") == 100 + 1 + 1
    assert cost(q) == 0  # ambiguous: validation reports it, the cost does not guess


def test_cost_is_linear_in_fragment_fan_out() -> None:
    fragments = "".join(
        f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}\n" for i in range(60)
    )
    q = "query { ...F0 }\n" + fragments + "fragment F60 on Query { collections { name } }"
    started = time.perf_counter()
    assert cost(q) == 2**60 * 2
    assert expanded_size(parse(q)) == 2**60 * 2
    assert time.perf_counter() - started < 30  # exponential work would never finish


def test_expanded_size_tolerates_cycles_and_unknown_fragments() -> None:
    q = (
        "query { ...A ...Nope } fragment A on Query { collections { name } ...B } "
        "fragment B on Query { ...A }"
    )
    assert expanded_size(parse(q)) == 2


def test_the_cost_model_names_match_the_schema() -> None:
    """Each name the cost model keys on is one field of the schema, with the default it assumes."""
    schema = build_schema()._schema
    owners: dict[str, list[str]] = {}
    for type_ in schema.type_map.values():
        if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
            for field_name in type_.fields:
                owners.setdefault(field_name, []).append(type_.name)
    assert owners["search"] == ["Query"]
    assert owners["searchBatch"] == ["Query"]
    assert sorted(owners["records"]) == ["CollectionStats", "Query"]  # root only: see cost.py
    assert sorted(owners["hits"]) == ["HitGroup", "SearchResult"]  # groups: see cost.py
    assert owners["groups"] == ["SearchResult"]
    assert owners["edges"] == ["RecordConnection"]
    # HitScores.vector (a Float) is charged like Record.vector: the walk is untyped, so the
    # cost model over-counts it, never under-counts.
    assert sorted(owners["vector"]) == ["HitScores", "Record"]
    query = schema.query_type
    assert query is not None
    assert query.fields["search"].args["topK"].default_value == DEFAULT_TOP_K
    assert query.fields["search"].args["offset"].default_value == DEFAULT_OFFSET
    assert query.fields["searchBatch"].args["topK"].default_value == DEFAULT_TOP_K
    assert query.fields["records"].args["first"].default_value == DEFAULT_FIRST
    hits = schema.type_map["SearchResult"].fields["hits"].type  # type: ignore[attr-defined]
    assert isinstance(hits, GraphQLNonNull)
    assert isinstance(hits.of_type, GraphQLList)


# --- JSON bodies ------------------------------------------------------------------------------


def test_json_nesting_is_bounded() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert decode_json(ok)
    for depth in (MAX_JSON_DEPTH + 1, 5000, 100_000):
        with pytest.raises(ValueError, match="nested"):
            decode_json("[" * depth + "]" * depth)


# --- rate limiting ----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("k")
    assert wait == pytest.approx(0.5)
    assert limiter.acquire("other") is None  # per key
    clock.now += 0.5
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") is not None
    clock.now += 100  # refills to the burst, not beyond
    assert [limiter.acquire("k") for _ in range(4)][-1] is not None


def test_rate_zero_is_off_and_retry_after_rounds_up() -> None:
    limiter = RateLimiter(rate=0, burst=1)
    assert all(limiter.acquire("k") is None for _ in range(1000))
    assert retry_after(0.0001) == 0.001
    assert retry_after(1.2341) == 1.235


# --- keys -------------------------------------------------------------------------------------


def test_key_format_and_hash() -> None:
    key = "vq_0123456789ab_" + "A" * 43
    assert parse_key(key) == ("0123456789ab", "A" * 43)
    for bad in ("", "vq_", "vq_0123456789ab_short", key + "x", "xx" + key[2:], key.upper()):
        assert parse_key(bad) is None
    salt = b"s" * 16
    digest = hash_secret("A" * 43, salt)
    info = KeyInfo("0123456789ab", Scope.READ, None, None, None, datetime.now(UTC), None, None)
    stored = StoredKey(info=info, kdf=KDF, salt=salt, digest=digest)
    assert secret_matches(stored, "A" * 43)
    assert not secret_matches(stored, "B" * 43)
    assert hash_secret("A" * 43, b"t" * 16) != digest  # salted


def test_scopes_are_ordered() -> None:
    assert Scope.ADMIN.allows(Scope.WRITE)
    assert Scope.WRITE.allows(Scope.READ)
    assert not Scope.READ.allows(Scope.WRITE)


# --- access rules -----------------------------------------------------------------------------


def info(name: str = "c", *, multi_tenant: bool = True) -> CollectionInfo:
    now = datetime.now(UTC)
    return CollectionInfo(
        name=name,
        dimension=4,
        metric=Metric.COSINE,
        description=None,
        model=None,
        fields=(),
        index=IndexSpec(),
        multi_tenant=multi_tenant,
        shards=1,
        milvus_name=f"vq_{name}",
        created_at=now,
        updated_at=now,
    )


def test_tenant_comes_from_the_key() -> None:
    bound = Principal(scope=Scope.WRITE, key_id="k", tenant="A")
    assert tenant_for(bound, info(), None) == "A"
    assert tenant_for(bound, info(), "A") == "A"
    with pytest.raises(Forbidden):
        tenant_for(bound, info(), "B")
    with pytest.raises(Forbidden):
        tenant_for(bound, info(multi_tenant=False), None)
    free = Principal(scope=Scope.READ, key_id="k")
    assert tenant_for(free, info(), "B") == "B"
    with pytest.raises(InvalidInput):
        tenant_for(free, info(), None)


def test_records_get_the_key_tenant() -> None:
    bound = Principal(scope=Scope.WRITE, key_id="k", tenant="A")
    out = records_for(
        bound, info(), [IncomingRecord(vector=None), IncomingRecord(None, tenant="A")]
    )
    assert [r.tenant for r in out] == ["A", "A"]
    with pytest.raises(Forbidden):
        records_for(bound, info(), [IncomingRecord(vector=None, tenant="B")])


def test_collections_and_ddl() -> None:
    only = Principal(scope=Scope.ADMIN, key_id="k", collections=frozenset({"c"}))
    assert can_see(only, info("c"))
    assert not can_see(only, info("d"))
    require_ddl(only, "c", action="dropCollection")
    with pytest.raises(Forbidden):
        require_ddl(only, "d", action="dropCollection")
    with pytest.raises(Forbidden):
        require_ddl(Principal(scope=Scope.ADMIN, key_id="k", tenant="A"), "c", action="x")
    with pytest.raises(Forbidden, match="needs scope write"):
        require(Principal(scope=Scope.READ, key_id="k"), Scope.WRITE, action="upsertRecords")
    tenant_key = Principal(scope=Scope.READ, key_id="k", tenant="A")
    assert not can_see(tenant_key, info("plain", multi_tenant=False))
    assert Principal.anonymous().scope is Scope.ADMIN


# --- HTTP-facing helpers ----------------------------------------------------------------------


def test_bearer_header() -> None:
    assert bearer_key("Bearer abc") == "abc"
    assert bearer_key("bearer   abc ") == "abc"
    for bad in (None, "", "Bearer", "Basic abc", "abc"):
        with pytest.raises(Unauthenticated):
            bearer_key(bad)


def test_exposure_rules() -> None:
    assert check_exposure(make_settings()) is None  # loopback: auth defaults to off
    assert check_exposure(make_settings(host="0.0.0.0")) is None  # elsewhere: apikey by default
    with pytest.raises(InsecureSettings, match="ALLOW_INSECURE"):
        check_exposure(make_settings(host="0.0.0.0", auth="off"))
    warning = check_exposure(make_settings(host="0.0.0.0", auth="off", allow_insecure=True))
    assert warning is not None
    assert "OFF" in warning
    assert make_settings(host="10.1.2.3").auth_mode == "apikey"


def test_production_errors_drop_suggestions_and_unknown_codes() -> None:
    message = "Cannot query field 'colections' on type 'Query'. Did you mean 'collections'?"
    assert without_suggestions(message) == "Cannot query field 'colections' on type 'Query'."
    enum = "Value 'COSIN' does not exist in 'Metric' enum. Did you mean the enum value 'COSINE'?"
    assert "Did you mean" not in without_suggestions(enum)
    odd = harden(GraphQLError("secret detail", extensions={"code": "SOMETHING_ELSE"}))
    assert odd.message == "Internal server error."
    assert odd.extensions == {"code": "INTERNAL"}
    kept = GraphQLError("nope", extensions={"code": "FORBIDDEN"})
    assert harden(kept) is kept


def test_valid_documents_is_a_bounded_lru() -> None:
    from graphql import parse

    from graph.http.limits import ValidDocuments

    valid = ValidDocuments(maxsize=2)
    documents = {q: parse(f"{{ {q} }}") for q in "abc"}
    valid.add("a", documents["a"])
    valid.add("b", documents["b"])
    assert "a" in valid  # now the most recent
    valid.add("c", documents["c"])  # evicts "b", the least recently used
    assert "b" not in valid
    assert valid.get("a") is documents["a"]
    assert valid.get("c") is documents["c"]
