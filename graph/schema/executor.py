"""A leaner field executor for graphql-core: plain leaf fields skip the general machinery.

Most fields of a search answer are plain attributes with a scalar type (a hit's ``id`` and
``score``, a record's ``text`` and ``metadata``): ten hits with their records are some sixty of
them. graphql-core builds a resolve-info object, looks up middleware, checks for awaitables and
walks the type wrappers for every one, which cost more CPU than the rest of the search's
execution (docs/measurements.md, "graph"). Here a field whose Strawberry definition is basic
(no resolver, no field extension: Strawberry itself reads it with ``getattr``) and whose type is
a scalar or enum is read and coerced directly. Anything unusual (a null for a non-null field,
a value the scalar refuses, an exception) goes to graphql-core's own path, which reads the
attribute again and reports the error exactly as before; so does every other field.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    Undefined,
    is_leaf_type,
    is_non_null_type,
    is_object_type,
)
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


@dataclass(frozen=True, slots=True)
class PlainLeaf:
    """A basic field of a scalar or enum type."""

    field: GraphQLField
    type: GraphQLLeafType
    non_null: bool
    read: Callable[[Any, str], Any]  # Strawberry's default resolver (getattr unless configured)
    python_name: str


PlainLeaves = Mapping[tuple[str, str], PlainLeaf]  # (object type, field name) -> leaf


def plain_leaves(schema: GraphQLSchema) -> PlainLeaves:
    """The schema's plain leaf fields, found once when the schema is built."""
    found: dict[tuple[str, str], PlainLeaf] = {}
    for type_ in schema.type_map.values():
        if not is_object_type(type_) or type_.name.startswith("__"):
            continue
        for name, field in type_.fields.items():
            definition = field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
            if not isinstance(definition, StrawberryField) or not definition.is_basic_field:
                continue
            if not getattr(field.resolve, "_is_default", False):  # Strawberry's getattr resolver
                continue
            non_null = is_non_null_type(field.type)
            inner = field.type.of_type if isinstance(field.type, GraphQLNonNull) else field.type
            if is_leaf_type(inner):
                found[(type_.name, name)] = PlainLeaf(
                    field, inner, non_null, definition.default_resolver, definition.python_name
                )
    return MappingProxyType(found)


class LeanExecutor(StrawberryGraphQLCoreExecutionContext):
    """Strawberry's executor, with plain leaf fields read directly (the module docstring).

    ``leaves`` is set on a subclass per schema (``executor_for``): graphql-core builds the
    executor itself, from the class."""

    leaves: PlainLeaves = MappingProxyType({})

    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Any,
        position_context: Any,
    ) -> Any:
        name = field_details_list[0].node.name.value
        leaf = self.leaves.get((parent_type.name, name))
        if (
            leaf is not None
            and parent_type.fields.get(name) is leaf.field  # a schema built on this one
            and not self._has_middleware()
        ):
            try:
                value = leaf.read(source, leaf.python_name)  # what Strawberry's resolver does
                if value is None:
                    if not leaf.non_null:
                        return None
                else:
                    coerced = leaf.type.coerce_output_value(value)
                    if coerced is not None and coerced is not Undefined:
                        return coerced
            except Exception:  # noqa: BLE001  (the general path raises it, located)
                pass
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def _has_middleware(self) -> bool:
        manager = self.middleware_manager
        return manager is not None and bool(manager.middlewares)


def executor_for(schema: GraphQLSchema) -> type[LeanExecutor]:
    """A ``LeanExecutor`` class that knows ``schema``'s plain leaf fields."""
    return type("SchemaExecutor", (LeanExecutor,), {"leaves": plain_leaves(schema)})


__all__ = ["LeanExecutor", "PlainLeaf", "executor_for", "plain_leaves"]
