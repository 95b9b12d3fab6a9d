"""Custom scalars: ``Vector`` (list of floats or base64 float32), ``JSON`` and ``DateTime``; and
``Long`` (``long_scalar``), the 64-bit integer of the typed schema's INT fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NewType, TypeAlias

import numpy as np
import strawberry
from graphql import GraphQLError, GraphQLScalarType, IntValueNode, ValueNode, print_ast
from strawberry.scalars import JSON

from store import VectorFormatError, parse_vector


@dataclass(frozen=True, slots=True)
class ParsedVector:
    """A vector argument: the array, or why it is not one.

    Parsing never fails the whole request: a batch reports each bad vector with its record index.
    """

    array: np.ndarray | None
    error: str | None = None


def _parse(value: Any) -> ParsedVector:
    try:
        return ParsedVector(parse_vector(value))
    except VectorFormatError as e:
        return ParsedVector(None, str(e))


def _serialize(value: Any) -> list[float]:
    if isinstance(value, np.ndarray):
        return [float(x) for x in value.tolist()]
    return [float(x) for x in value]


def _vector_scalar() -> Any:
    return strawberry.scalar(
        NewType("Vector", object),
        name="Vector",
        description=(
            "A vector: a JSON list of numbers, or a base64 string of little-endian float32 values "
            "(the compact form for large batches). Output vectors are lists of floats."
        ),
        serialize=_serialize,
        parse_value=_parse,
    )


if TYPE_CHECKING:
    Vector: TypeAlias = ParsedVector
else:
    Vector = _vector_scalar()


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _long(value: Any) -> int:
    # bool is an int in Python but not an integer to a client; an integral float is the same
    # number (a JSON decoder may give one).
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise GraphQLError(f"Long cannot represent non-integer value: {value!r}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise GraphQLError(f"Long cannot represent a value outside 64 bits: {value}")
    return value


def _long_literal(node: ValueNode, _variables: Any = None) -> int:
    if not isinstance(node, IntValueNode):
        raise GraphQLError(f"Long cannot represent non-integer value: {print_ast(node)}", node)
    return _long(int(node.value))


def long_scalar() -> GraphQLScalarType:
    """``Long``: a signed 64-bit integer, what an INT field holds (GraphQL's ``Int`` is 32-bit).

    Written as a JSON number, as the generic API's ``JSON`` metadata shows the same value; a
    client whose numbers are doubles (JavaScript) reads values beyond 2**53 rounded."""
    return GraphQLScalarType(
        "Long",
        serialize=_long,
        parse_value=_long,
        parse_literal=_long_literal,
        description=(
            "A signed 64-bit integer (-2^63 to 2^63-1), written as a JSON number: the value of "
            "an INT field."
        ),
    )


__all__ = ["JSON", "ParsedVector", "Vector", "long_scalar"]
