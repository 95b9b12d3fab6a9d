"""The typed schema's plain leaf fields, for the lean executor (``graph.schema.executor``).

A typed search answers with more leaf fields than the generic one (each declared field where the
generic has one ``metadata``), and graphql-core's general path costs more per field than the
field's own work. The typed types' leaves are of two kinds, both read directly:

- fields shared with the generic types (``BooksRecord.id`` is ``Record.id``'s field object,
  ``BooksHit.score`` is ``Hit.score``'s): the generic schema's leaf, under the typed type's name;
- declared fields and ``extra``, whose resolvers ignore ``info``: their reader, carried in the
  field's extensions under ``READ`` (``graph.schema.typed.types``).
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLNonNull,
    GraphQLSchema,
    is_leaf_type,
    is_object_type,
)

from graph.schema.executor import LeanExecutor, PlainLeaf, PlainLeaves

READ = "vectorql.read"  # GraphQLField.extensions key: (source, name) -> value, as the resolver


def reader_field(
    kind: Any, read: Callable[[Any, str], Any], name: str, description: str | None = None
) -> GraphQLField:
    """A field resolved by ``read(source, name)``, which the lean executor may call directly."""
    return GraphQLField(
        kind,
        resolve=lambda source, _info: read(source, name),
        description=description,
        extensions={READ: read},
    )


def executor_with_typed_leaves(
    schema: GraphQLSchema, base: type[Any] | None
) -> type[LeanExecutor] | None:
    """A ``LeanExecutor`` class for ``schema`` (the generic schema plus typed types), extending
    ``base``'s leaves (the generic schema's executor); None when ``base`` is not a lean one."""
    if base is None or not issubclass(base, LeanExecutor):
        return None
    leaves = _leaves(schema, base.leaves)
    return type("TypedSchemaExecutor", (base,), {"leaves": leaves})


def _leaves(schema: GraphQLSchema, generic: PlainLeaves) -> PlainLeaves:
    by_field = {id(leaf.field): leaf for leaf in generic.values()}
    found = dict(generic)
    for type_ in schema.type_map.values():
        if not is_object_type(type_) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            if (type_.name, name) in found:
                continue
            shared = by_field.get(id(field))
            if shared is not None and shared.field is field:
                found[(type_.name, name)] = shared
                continue
            read = field.extensions.get(READ)
            non_null = isinstance(field.type, GraphQLNonNull)
            inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if read is not None and is_leaf_type(inner):
                found[(type_.name, name)] = PlainLeaf(field, inner, non_null, read, name)
    return MappingProxyType(found)


__all__ = ["READ", "executor_with_typed_leaves", "reader_field"]
