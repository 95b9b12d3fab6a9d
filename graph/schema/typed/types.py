"""The GraphQL types generated for one collection, built from the generic schema's own types and
fields so that typed and generic are one engine.

For a collection ``books``: ``BooksRecord`` (the declared fields typed, undeclared keys in
``extra``), ``BooksFilter``, ``BooksInput``, ``BooksHit``, ``BooksSearchResult``,
``BooksRecordEdge``, ``BooksRecordConnection`` and ``BooksCollection`` (``search``, ``record``,
``records``), the root field ``books`` and the mutations ``upsertBooks`` and ``deleteBooks``.

Each typed field calls the generic field's resolver (the same argument checks, limits, access
rules and store calls) with ``collection`` filled in, a typed filter turned into the generic one
(``graph.schema.typed.filters``) and typed records into generic ones. Arguments are copied from
the generic field, so an argument added there appears here too; results are the generic
results, read through typed fields.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from graphql import (
    GraphQLArgument,
    GraphQLBoolean,
    GraphQLField,
    GraphQLFloat,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLString,
    GraphQLType,
)

from graph.schema.scalars import long_scalar
from graph.schema.typed import names
from graph.schema.typed.comparisons import ID_KEY, comparison_inputs
from graph.schema.typed.filters import to_generic
from graph.schema.typed.leaves import reader_field
from store import CollectionInfo, FieldSpec, FieldType, InvalidInput

ResolveInfo = GraphQLResolveInfo[Any]  # graphql-core's; the context is graph.schema.Context

RECORD_BUILTINS = ("text", "tenant", "vector", "createdAt", "updatedAt")  # from the generic Record


@dataclass(frozen=True, slots=True)
class Generic:
    """What the typed types take from the generic schema (built once per app)."""

    schema: GraphQLSchema
    query: GraphQLObjectType
    mutation: GraphQLObjectType
    names: names.GenericNames
    comparisons: Mapping[FieldType | str, GraphQLInputObjectType]
    scalars: Mapping[FieldType, GraphQLScalarType]

    @classmethod
    def of(cls, schema: GraphQLSchema) -> Generic:
        assert schema.query_type is not None
        assert schema.mutation_type is not None
        json = _scalar(schema, "JSON")
        date_time = _scalar(schema, "DateTime")
        long = long_scalar()  # INT fields are 64-bit; GraphQL's Int is 32
        record_input = schema.type_map["RecordInput"]
        assert isinstance(record_input, GraphQLInputObjectType)
        return cls(
            schema=schema,
            query=schema.query_type,
            mutation=schema.mutation_type,
            names=names.GenericNames(
                types=frozenset(schema.type_map),
                query_fields=frozenset(schema.query_type.fields),
                mutation_fields=frozenset(schema.mutation_type.fields),
                record_fields=names.RECORD_FIELDS | (record_input.fields.keys() - {"metadata"}),
            ),
            comparisons=comparison_inputs(json=json, date_time=date_time, long=long),
            scalars={
                FieldType.STRING: GraphQLString,
                FieldType.INT: long,
                FieldType.FLOAT: GraphQLFloat,
                FieldType.BOOL: GraphQLBoolean,
                FieldType.DATETIME: date_time,
                FieldType.STRING_LIST: GraphQLString,  # the item type; see _field_type
                FieldType.JSON: json,
            },
        )

    def object_type(self, name: str) -> GraphQLObjectType:
        found = self.schema.type_map[name]
        assert isinstance(found, GraphQLObjectType)
        return found


@dataclass(frozen=True, slots=True)
class CollectionTypes:
    """One collection's root fields (its types hang from them)."""

    query_fields: dict[str, GraphQLField]
    mutation_fields: dict[str, GraphQLField]


def collection_types(info: CollectionInfo, generic: Generic) -> CollectionTypes:
    name = info.name
    declared = {f.name for f in info.fields}

    def named(suffix: str) -> str:
        return names.type_name(name, suffix)

    record = GraphQLObjectType(
        named("Record"),
        lambda: _record_fields(info, generic),
        description=f"A record of collection {name!r}: its declared fields typed.",
    )
    where = GraphQLInputObjectType(
        named("Filter"),
        lambda: _filter_fields(info, generic, where),
        description=(
            f"A filter on collection {name!r}: every condition given must hold (_and, _or and "
            "_not combine filters). Same semantics as the generic Filter."
        ),
    )
    record_input = GraphQLInputObjectType(
        named("Input"),
        lambda: _input_fields(info, generic),
        description=(
            f"A record of collection {name!r} to upsert: declared fields typed, other metadata "
            "keys in extra."
        ),
    )
    hit = _retyped_object(generic.object_type("Hit"), named("Hit"), {"record": record})
    result = _retyped_object(
        generic.object_type("SearchResult"), named("SearchResult"), {"hits": hit}
    )
    edge = _retyped_object(generic.object_type("RecordEdge"), named("RecordEdge"), {"node": record})
    connection = _retyped_object(
        generic.object_type("RecordConnection"), named("RecordConnection"), {"edges": edge}
    )

    def typed_where(kwargs: dict[str, Any]) -> dict[str, Any]:
        if "where" in kwargs:
            kwargs["where"] = to_generic(kwargs["where"])
        return kwargs

    def typed_records(kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs["records"] = [_generic_record(r, declared) for r in kwargs["records"]]
        return kwargs

    query = generic.query
    collection = GraphQLObjectType(
        named("Collection"),
        {
            "search": _delegate(
                query.fields["search"], name, result, {"where": where}, typed_where
            ),
            "record": _delegate(query.fields["record"], name, record, {}, typed_where),
            "records": _delegate(
                query.fields["records"], name, connection, {"where": where}, typed_where
            ),
        },
        description=f"Typed reads of collection {name!r}.",
    )
    mutation = generic.mutation
    return CollectionTypes(
        query_fields={
            names.root_field(name): GraphQLField(
                GraphQLNonNull(collection),
                resolve=lambda _source, _info: name,
                description=f"Collection {name!r}, typed: search, record and records.",
            )
        },
        mutation_fields={
            names.upsert_field(name): _delegate(
                mutation.fields["upsertRecords"],
                name,
                None,
                {"records": record_input},
                typed_records,
            ),
            names.delete_field(name): _delegate(
                mutation.fields["deleteRecords"], name, None, {"where": where}, typed_where
            ),
        },
    )


def _record_fields(info: CollectionInfo, generic: Generic) -> dict[str, GraphQLField]:
    base = generic.object_type("Record").fields
    fields: dict[str, GraphQLField] = {"id": base["id"]}
    for f in info.fields:
        fields[f.name] = reader_field(_field_type(f, generic), _metadata(f), f.name)
    declared = frozenset(f.name for f in info.fields)

    def extra(source: Any, _name: str) -> dict[str, Any]:
        return {k: v for k, v in source.metadata.items() if k not in declared}

    fields["extra"] = reader_field(
        generic.scalars[FieldType.JSON],
        extra,
        "extra",
        description="Metadata keys that are not declared fields.",
    )
    fields.update({f: base[f] for f in RECORD_BUILTINS})
    return fields


def _filter_fields(
    info: CollectionInfo, generic: Generic, itself: GraphQLInputObjectType
) -> dict[str, GraphQLInputField]:
    fields = {
        "_and": GraphQLInputField(GraphQLList(GraphQLNonNull(itself))),
        "_or": GraphQLInputField(GraphQLList(GraphQLNonNull(itself))),
        "_not": GraphQLInputField(itself),
        "id": GraphQLInputField(generic.comparisons[ID_KEY]),
    }
    for f in info.fields:
        if f.filterable:
            fields[f.name] = GraphQLInputField(generic.comparisons[f.type])
    return fields


def _input_fields(info: CollectionInfo, generic: Generic) -> dict[str, GraphQLInputField]:
    record_input = generic.schema.type_map["RecordInput"]
    assert isinstance(record_input, GraphQLInputObjectType)
    fields = {k: v for k, v in record_input.fields.items() if k != "metadata"}
    for f in info.fields:
        kind = _field_type(f, generic)
        fields[f.name] = GraphQLInputField(GraphQLNonNull(kind) if f.required else kind)
    fields["extra"] = GraphQLInputField(
        generic.scalars[FieldType.JSON],
        description="Metadata keys that are not declared fields (an object).",
    )
    return fields


def _field_type(f: FieldSpec, generic: Generic) -> GraphQLScalarType | GraphQLList[Any]:
    scalar = generic.scalars[f.type]
    return GraphQLList(GraphQLNonNull(scalar)) if f.type is FieldType.STRING_LIST else scalar


def _metadata(f: FieldSpec) -> Callable[[Any, str], Any]:
    """The reader of a declared field: (record, field name) -> value."""
    if f.type is FieldType.DATETIME:

        def read_datetime(source: Any, name: str) -> Any:
            value = source.metadata.get(name)
            return datetime.fromisoformat(value) if isinstance(value, str) else value

        return read_datetime
    return lambda source, name: source.metadata.get(name)


def _generic_record(typed: Mapping[str, Any], declared: set[str]) -> dict[str, Any]:
    """A ``BooksInput`` value as the generic ``RecordInput``'s: declared fields and ``extra``
    become ``metadata``."""
    extra = typed.get("extra")
    if extra is not None and not isinstance(extra, dict):
        raise InvalidInput("extra must be an object of metadata keys")
    metadata: dict[str, Any] = dict(extra or {})
    out: dict[str, Any] = {}
    for key, value in typed.items():
        if key in declared:
            metadata[key] = value.isoformat() if isinstance(value, datetime) else value
        elif key != "extra":
            out[key] = value
    out["metadata"] = metadata
    return out


def _delegate(
    generic_field: GraphQLField,
    collection: str,
    output: GraphQLNamedType | None,
    retyped_args: Mapping[str, GraphQLInputObjectType],
    convert: Callable[[dict[str, Any]], dict[str, Any]],
) -> GraphQLField:
    """``generic_field`` for one collection: without its ``collection`` argument, with the
    arguments in ``retyped_args`` (and the result, when ``output``) of the typed types."""
    args = {
        k: GraphQLArgument(
            _rewrap(a.type, retyped_args[k]) if k in retyped_args else a.type,
            default_value=a.default_value,
            description=a.description,
        )
        for k, a in generic_field.args.items()
        if k != "collection"
    }
    resolve = generic_field.resolve
    assert resolve is not None

    def resolver(_source: Any, info: ResolveInfo, **kwargs: Any) -> Any:
        # The generic resolver returns its awaitable; graphql-core awaits it.
        return resolve(None, info, collection=collection, **convert(kwargs))

    return GraphQLField(
        _rewrap(generic_field.type, output) if output is not None else generic_field.type,
        args=args,
        resolve=resolver,
        description=generic_field.description,
    )


def _retyped_object(
    generic: GraphQLObjectType, name: str, retyped: Mapping[str, GraphQLNamedType]
) -> GraphQLObjectType:
    """A copy of ``generic`` named ``name`` whose fields in ``retyped`` return those types (the
    same resolvers: the source objects are the generic ones)."""

    def fields() -> dict[str, GraphQLField]:
        out = {}
        for key, f in generic.fields.items():
            if key in retyped:
                f = GraphQLField(
                    _rewrap(f.type, retyped[key]),
                    args=f.args,
                    resolve=f.resolve,
                    description=f.description,
                )
            out[key] = f
        return out

    return GraphQLObjectType(name, fields, description=generic.description)


def _rewrap(kind: GraphQLType, named: GraphQLNamedType) -> Any:
    """``kind``'s list and non-null wrappers around ``named``."""
    if isinstance(kind, GraphQLNonNull):
        return GraphQLNonNull(_rewrap(kind.of_type, named))
    if isinstance(kind, GraphQLList):
        return GraphQLList(_rewrap(kind.of_type, named))
    return named


def _scalar(schema: GraphQLSchema, name: str) -> GraphQLScalarType:
    found = schema.type_map[name]
    assert isinstance(found, GraphQLScalarType)
    return found


__all__ = ["CollectionTypes", "Generic", "collection_types"]
