"""Filter tree -> a plain Python predicate: the reference semantics the compilers must match.

Two-valued logic: a leaf on an absent value (missing key or None) is false, whatever the
operator (``ne`` and ``notIn`` included); ``not`` inverts; ``isNull`` tests absence. ``metadata``
holds canonical values (``store.fields.canonical``), as SQL stores them.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from typing import Any

from store.filters.tree import ID_FIELD, And, Compare, Filter, IsNull, Like, Not, Op, Or

COMPARE: dict[Op, Callable[[Any, Any], bool]] = {
    Op.EQ: operator.eq,
    Op.NE: operator.ne,
    Op.GT: operator.gt,
    Op.GTE: operator.ge,
    Op.LT: operator.lt,
    Op.LTE: operator.le,
    Op.IN: lambda value, wanted: value in wanted,
    Op.NOT_IN: lambda value, wanted: value not in wanted,
    Op.CONTAINS: lambda value, wanted: wanted in value,
    Op.CONTAINS_ANY: lambda value, wanted: any(w in value for w in wanted),
    Op.CONTAINS_ALL: lambda value, wanted: all(w in value for w in wanted),
}


def evaluate(f: Filter, *, id: str, metadata: Mapping[str, Any]) -> bool:
    """Whether the record (``id``, canonical ``metadata``) matches ``f``."""
    if isinstance(f, And):
        return all(evaluate(item, id=id, metadata=metadata) for item in f.items)
    if isinstance(f, Or):
        return any(evaluate(item, id=id, metadata=metadata) for item in f.items)
    if isinstance(f, Not):
        return not evaluate(f.item, id=id, metadata=metadata)
    value = id if f.field == ID_FIELD else metadata.get(f.field)
    if isinstance(f, IsNull):
        return (value is None) == f.null
    if value is None:
        return False
    if isinstance(f, Like):
        return isinstance(value, str) and f.pattern.matches(value)
    assert isinstance(f, Compare)
    return bool(COMPARE[f.op](value, f.value))
