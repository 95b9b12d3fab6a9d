"""The lean executor answers exactly as graphql-core's own path, errors included."""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from strawberry.scalars import JSON

from graph.schema import build_schema
from graph.schema.executor import executor_for


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"


@strawberry.type
class Item:
    id: strawberry.ID
    score: float
    label: str | None
    required: str
    colour: Colour
    data: JSON

    @strawberry.field
    def doubled(self) -> float:
        return self.score * 2


ITEMS: list[dict[str, Any]] = [
    {"id": "a", "score": 0.5, "label": None, "required": "x", "colour": Colour.RED, "data": {}},
    {"id": "b", "score": 1, "label": "l", "required": "y", "colour": Colour.RED, "data": [1]},
    # A null for a non-null field, and a value Float refuses: errors with paths.
    {"id": "c", "score": 2.0, "label": "", "required": None, "colour": Colour.RED, "data": 1},
    {"id": "d", "score": "nan?", "label": 3, "required": "z", "colour": "blue", "data": None},
]


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item | None]:
        return [Item(**item) for item in ITEMS]


QUERY = "{ items { id score label required colour data doubled alias: score __typename } }"


def run(schema: strawberry.Schema) -> tuple[Any, list[Any]]:
    result = asyncio.run(schema.execute(QUERY))
    errors = sorted((e.message, tuple(e.path or ())) for e in result.errors or [])
    return result.data, errors


def test_same_data_and_errors_as_graphql_core() -> None:
    plain = strawberry.Schema(query=Query)
    lean = strawberry.Schema(query=Query)
    lean.execution_context_class = executor_for(lean._schema)
    assert ("Item", "score") in lean.execution_context_class.leaves
    assert ("Item", "doubled") not in lean.execution_context_class.leaves  # has a resolver
    data, errors = run(lean)
    assert (data, errors) == run(plain)
    assert data["items"][0] == {
        "id": "a",
        "score": 0.5,
        "label": None,
        "required": "x",
        "colour": "RED",
        "data": {},
        "doubled": 1.0,
        "alias": 0.5,
        "__typename": "Item",
    }
    assert data["items"][2] is None
    assert data["items"][3] is None
    assert [path for _, path in errors] == [("items", 2, "required"), ("items", 3, "score")]


@pytest.mark.parametrize(
    ("type_name", "field"),
    [("Hit", "score"), ("Hit", "id"), ("Record", "metadata"), ("Record", "text")],
)
def test_search_answers_read_directly(type_name: str, field: str) -> None:
    assert (type_name, field) in build_schema().execution_context_class.leaves
