"""The live schema of a set of collections: the generic schema with each collection's typed root
fields, as a Strawberry schema that executes like the generic one (same extensions, same error
mapping).

The generic part is built by Strawberry once per app; the typed part is plain graphql-core types
made from it (``graph.schema.typed.types``), cached per collection shape, so a rebuild after a
DDL builds only the changed collections' types and assembles the rest.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from typing import Any

import strawberry
from graphql import GraphQLObjectType, GraphQLSchema, validate_schema

from graph.schema.typed.leaves import executor_with_typed_leaves
from graph.schema.typed.names import GenericNames, check_names
from graph.schema.typed.types import CollectionTypes, Generic, collection_types
from store import CollectionInfo, InvalidInput

log = logging.getLogger(__name__)


class TypedSchemas:
    """Builds live schemas on one generic schema, reusing the types of unchanged collections."""

    def __init__(self, generic: strawberry.Schema) -> None:
        self.generic = generic
        self._parts = Generic.of(generic._schema)
        self._cache: dict[tuple[Any, ...], CollectionTypes] = {}

    @property
    def names(self) -> GenericNames:
        return self._parts.names

    def check(self, new: CollectionInfo, others: Sequence[CollectionInfo]) -> None:
        """The name rule at ``createCollection`` (``InvalidInput`` on a collision)."""
        check_names(new, others, builtin=self._parts.names)

    def build(self, collections: Sequence[CollectionInfo]) -> strawberry.Schema:
        """The generic schema plus ``collections``' typed fields; raises when the result is not
        a valid schema (the caller keeps serving the one it has)."""
        if not collections:
            return self.generic
        cache: dict[tuple[Any, ...], CollectionTypes] = {}
        query = dict(self._parts.query.fields)
        mutation = dict(self._parts.mutation.fields)
        for info in typeable(collections, builtin=self._parts.names):
            key = _shape(info)
            types = self._cache.get(key) or collection_types(info, self._parts)
            cache[key] = types
            query.update(types.query_fields)
            mutation.update(types.mutation_fields)
        generic = self._parts.schema
        schema = GraphQLSchema(
            query=_with_fields(self._parts.query, query),
            mutation=_with_fields(self._parts.mutation, mutation),
            types=[
                t
                for name, t in generic.type_map.items()
                if not name.startswith("__") and name not in ("Query", "Mutation")
            ],
            directives=generic.directives,
            extensions=generic.extensions,
        )
        errors = validate_schema(schema)
        if errors:
            raise ValueError("invalid typed schema: " + "; ".join(e.message for e in errors))
        live = copy.copy(self.generic)
        live._schema = schema
        # The cost model (graph.http.cost) walks into these as into the root.
        live.collection_fields = frozenset(query.keys() - self._parts.query.fields.keys())  # type: ignore[attr-defined]
        schema._strawberry_schema = live  # type: ignore[attr-defined]  # as Strawberry does
        executor = executor_with_typed_leaves(schema, self.generic.execution_context_class)
        if executor is not None:  # the typed leaves read directly, as the generic ones
            live.execution_context_class = executor
        self._cache = cache  # dropped and changed collections' types go
        return live


def typeable(
    collections: Sequence[CollectionInfo], *, builtin: GenericNames
) -> list[CollectionInfo]:
    """The collections that get typed fields: one created before the name rule whose names
    collide gets none (a warning says why); the generic API serves it as before."""
    accepted: list[CollectionInfo] = []
    for info in collections:
        try:
            check_names(info, accepted, builtin=builtin)
        except InvalidInput as e:
            log.warning("collection %r has no typed API: %s", info.name, e)
            continue
        accepted.append(info)
    return accepted


def _shape(info: CollectionInfo) -> tuple[Any, ...]:
    """What a collection's types depend on."""
    return (info.name, tuple((f.name, f.type, f.filterable, f.required) for f in info.fields))


def _with_fields(root: GraphQLObjectType, fields: dict[str, Any]) -> GraphQLObjectType:
    return GraphQLObjectType(
        root.name, fields, description=root.description, extensions=root.extensions
    )
