"""A typed filter (``BooksFilter``, Hasura style) as the generic ``Filter``'s dictionary, so both
are parsed, checked and compiled by the same code: one semantics.

``{year: {_gte: 1990, _lt: 2000}, _or: [...]}`` is the conjunction of its entries, each operator
one generic node: ``{and: [{field: "year", gte: 1990}, {field: "year", lt: 2000}, {or: [...]}]}``.
A value the client set to null stays null, and a comparison without operators becomes a node
without one, so the generic parser reports them as it does for the generic filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

# Typed operator -> the generic Filter's operator.
OPERATORS = {
    "_eq": "eq", "_neq": "ne", "_in": "in", "_nin": "notIn", "_gt": "gt", "_gte": "gte",
    "_lt": "lt", "_lte": "lte", "_like": "like", "_is_null": "isNull", "_contains": "contains",
    "_contains_any": "containsAny", "_contains_all": "containsAll",
}  # fmt: skip
COMBINATORS = {"_and": "and", "_or": "or"}


def to_generic(where: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The generic filter of a typed ``where`` argument; ``{}`` (no condition) is no filter."""
    if where is None or not where:
        return None
    return _node(where)


def _node(where: Mapping[str, Any]) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    for key, value in where.items():
        if key in COMBINATORS:
            nodes.append({COMBINATORS[key]: None if value is None else [_node(v) for v in value]})
        elif key == "_not":
            nodes.append({"not": None if value is None else _node(value)})
        elif value is None or not value:
            nodes.append({"field": key})  # no operator: refused by the generic parser
        else:
            nodes.extend({"field": key, OPERATORS[op]: _value(v)} for op, v in value.items())
    return nodes[0] if len(nodes) == 1 else {"and": nodes}


def _value(value: Any) -> Any:
    # DateTime arrives parsed; the generic filter takes it as the ISO text a client would send.
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        return [_value(v) for v in value]
    return value
