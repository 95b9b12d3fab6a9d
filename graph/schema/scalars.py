"""Custom scalars: ``Vector`` (list of floats or base64 float32), ``JSON`` and ``DateTime``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NewType, TypeAlias

import numpy as np
import strawberry
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


__all__ = ["JSON", "ParsedVector", "Vector"]
