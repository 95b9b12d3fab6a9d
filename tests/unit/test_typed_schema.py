"""The typed schema without I/O: the naming rule, filter translation, the cost of typed fields
and the schema build (types, arguments copied from the generic fields, cached types)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from graphql import parse, print_schema

from graph.http.cost import Caps, operation_cost
from graph.schema import build_schema
from graph.schema.typed import TypedSchemas, prefix, root_field
from graph.schema.typed.filters import to_generic
from store import CollectionInfo, FieldSpec, FieldType, IndexSpec, IndexType, InvalidInput, Metric


def collection(name: str, *fields: FieldSpec) -> CollectionInfo:
    now = datetime.now(UTC)
    return CollectionInfo(
        name=name, dimension=4, metric=Metric.COSINE, description=None, model=None,
        fields=fields, index=IndexSpec(IndexType.HNSW, {}), multi_tenant=False, shards=1,
        milvus_name=name, created_at=now, updated_at=now,
    )  # fmt: skip


BOOKS = collection(
    "books",
    FieldSpec("title", FieldType.STRING, required=True),
    FieldSpec("year", FieldType.INT),
    FieldSpec("tags", FieldType.STRING_LIST),
    FieldSpec("note", FieldType.STRING, filterable=False),
)


def test_the_naming_rule() -> None:
    assert (prefix("books"), root_field("books")) == ("Books", "books")
    assert (prefix("web_pages"), root_field("web_pages")) == ("WebPages", "webPages")
    assert prefix("webPages") == prefix("web_pages")


def test_collisions_name_what_they_collide_with() -> None:
    typed = TypedSchemas(build_schema())
    typed.check(BOOKS, [])
    with pytest.raises(InvalidInput, match=r"type WebPages\w+ would collide .* 'web_pages'"):
        typed.check(collection("webPages"), [collection("web_pages")])
    with pytest.raises(InvalidInput, match=r"Query\.records"):
        typed.check(collection("records"), [])
    with pytest.raises(InvalidInput, match=r"type RecordInput would collide with the built-in"):
        typed.check(collection("record"), [])


def test_typed_filters_become_generic_ones() -> None:
    assert to_generic({}) is None
    assert to_generic({"year": {"_gte": 1, "_lt": 2}, "_not": {"id": {"_eq": "a"}}}) == {
        "and": [
            {"field": "year", "gte": 1},
            {"field": "year", "lt": 2},
            {"not": {"field": "id", "eq": "a"}},
        ]
    }
    assert to_generic({"_or": [{"tags": {"_contains_any": ["x"]}}]}) == {
        "or": [{"field": "tags", "containsAny": ["x"]}]
    }
    assert to_generic({"year": {}}) == {"field": "year"}  # refused by the generic parser
    at = datetime(2020, 1, 2, tzinfo=UTC)
    assert to_generic({"at": {"_gt": at}}) == {"field": "at", "gt": at.isoformat()}


def test_a_typed_search_costs_what_a_generic_one_does() -> None:
    caps = Caps(top_k=1000, search_batch=64, page_size=1000)
    generic = parse('{ search(collection: "books", topK: 500) { hits { id record { vector } } } }')
    typed = parse("{ books { search(topK: 500) { hits { id record { vector } } } } }")
    expected = operation_cost(generic, operation_name=None, variables=None, caps=caps)
    assert expected > 500 * 50
    cost = operation_cost(
        typed, operation_name=None, variables=None, caps=caps, collections=frozenset({"books"})
    )
    assert cost == expected + 1  # the books field itself


def test_the_live_schema_has_typed_fields_and_reuses_types() -> None:
    typed = TypedSchemas(build_schema())
    assert typed.build([]) is typed.generic
    first = typed.build([BOOKS])
    sdl = print_schema(first._schema)
    assert "books: BooksCollection!" in sdl
    assert "upsertBooks(records: [BooksInput!]!, atomic: Boolean! = true): UpsertResult!" in sdl
    assert "note: StringComparison" not in sdl  # not filterable
    assert "  title: String!\n" in sdl  # required in BooksInput
    search = first._schema.type_map["BooksCollection"].fields["search"]  # type: ignore[union-attr]
    generic = typed.generic._schema.query_type.fields["search"]  # type: ignore[union-attr]
    assert set(search.args) == set(generic.args) - {"collection"}  # copied, not hand-written
    again = typed.build([BOOKS, collection("films")])
    assert again._schema.type_map["BooksRecord"] is first._schema.type_map["BooksRecord"]
    assert "booksRecord" not in again.collection_fields  # type: ignore[attr-defined]
    assert again.collection_fields == {"books", "films"}  # type: ignore[attr-defined]


def test_collections_from_before_the_naming_rule_keep_only_the_generic_api() -> None:
    typed = TypedSchemas(build_schema())
    old = collection("older", FieldSpec("extra", FieldType.JSON))  # created before the rule
    clash = collection("web_pages")
    schema = typed.build([BOOKS, old, collection("webPages"), clash])
    fields = schema._schema.query_type.fields
    assert {"books", "webPages"} <= fields.keys()
    assert "older" not in fields
    assert "collection" in fields["search"].args  # the generic root field is not overwritten


def test_typed_leaves_are_read_directly() -> None:
    """The typed types' scalar fields go to the lean executor as the generic ones do: declared
    fields and extra by their readers, fields shared with the generic types by theirs."""
    live = TypedSchemas(build_schema()).build([BOOKS])
    leaves = live.execution_context_class.leaves  # type: ignore[attr-defined]
    for field in ("id", "title", "year", "note", "extra", "text", "createdAt"):
        assert ("BooksRecord", field) in leaves, field
    assert ("BooksHit", "score") in leaves
    assert ("BooksRecord", "tags") not in leaves  # a list: graphql-core's path
    record = SimpleNamespace(metadata={"title": "Dune", "year": 2**40, "shelf": 3})
    assert leaves[("BooksRecord", "year")].read(record, "year") == 2**40
    assert leaves[("BooksRecord", "extra")].read(record, "extra") == {"shelf": 3}
    assert leaves[("BooksRecord", "note")].read(record, "note") is None
