"""The comparison inputs of typed filters (Hasura style), one per field type, shared by every
collection: ``IntComparison { _eq: Long _neq: Long _in: [Long!] ... _is_null: Boolean }``.

The operators of each type are the ones the generic ``Filter`` allows for it (its description
lists them); the typed ones only move the check from the server to the client's compiler.

Each is named after the vectorql field type it compares (``IntComparison`` for INT fields, as in
design.md section 10), not after its GraphQL scalar: INT fields are 64-bit, so ``IntComparison``
takes ``Long`` values (GraphQL's ``Int`` is 32-bit and would refuse a stored 2**40).
"""

from __future__ import annotations

from collections.abc import Mapping

from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLString,
)

from store import FieldType

ORDERED = ("_eq", "_neq", "_in", "_nin", "_gt", "_gte", "_lt", "_lte")
LISTS = frozenset({"_in", "_nin", "_contains_any", "_contains_all"})
ID_KEY = "ID"  # the comparison of ``id``: as STRING, without _is_null


def comparison_inputs(
    *, json: GraphQLScalarType, date_time: GraphQLScalarType, long: GraphQLScalarType
) -> Mapping[FieldType | str, GraphQLInputObjectType]:
    """A comparison input per field type (and ``ID_KEY``), built on the schema's own scalars."""

    def make(name: str, scalar: GraphQLScalarType, ops: tuple[str, ...]) -> GraphQLInputObjectType:
        def field(op: str) -> GraphQLInputField:
            if op == "_is_null":
                return GraphQLInputField(GraphQLBoolean)
            if op == "_like":  # a pattern, whatever the type compared
                return GraphQLInputField(GraphQLString)
            if op in LISTS:
                return GraphQLInputField(GraphQLList(GraphQLNonNull(scalar)))
            return GraphQLInputField(scalar)

        return GraphQLInputObjectType(
            name,
            {op: field(op) for op in ops},
            description=(
                f"Conditions on a value of type {scalar.name}; all that are given must hold."
            ),
        )

    return {
        FieldType.STRING: make("StringComparison", GraphQLString, (*ORDERED, "_like", "_is_null")),
        FieldType.INT: make("IntComparison", long, (*ORDERED, "_is_null")),
        FieldType.FLOAT: make("FloatComparison", GraphQLFloat, (*ORDERED, "_is_null")),
        FieldType.DATETIME: make("DateTimeComparison", date_time, (*ORDERED, "_is_null")),
        FieldType.BOOL: make("BooleanComparison", GraphQLBoolean, ("_eq", "_neq", "_is_null")),
        FieldType.STRING_LIST: make(
            "StringListComparison",
            GraphQLString,
            ("_contains", "_contains_any", "_contains_all", "_is_null"),
        ),
        FieldType.JSON: make("JSONComparison", json, ("_is_null",)),
        ID_KEY: make("IDComparison", GraphQLID, (*ORDERED, "_like")),
    }
