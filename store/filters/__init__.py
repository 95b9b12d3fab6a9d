"""Metadata filters: one validated tree, three evaluators that agree.

``check_shape`` bounds a ``Filter`` input's nesting and list sizes without a schema (before any
store call); ``parse_filter`` turns it (a dict of the keys the client set) into a frozen tree
with canonical values; ``to_milvus`` compiles it to a Milvus expression (values as escaped
literals: Milvus Lite 3.x and Milvus 2.3 have no ``filter_params``), ``to_sql`` to a SQLAlchemy
clause over ``RecordRow``, and ``evaluate`` is the reference semantics in plain Python.

Semantics, identical in all three:

- An absent value (key missing, or null) fails every comparison, ``ne`` and ``notIn`` included;
  ``not`` inverts a whole node (``not {eq: 5}`` matches absent values); ``isNull: true`` matches
  absent values and ``isNull: false`` present ones. ``id`` is never absent.
- Strings (``id``, STRING, canonical DATETIME text) order by code point; DATETIME values compare
  as instants (canonical UTC text in SQL and Python, microseconds in Milvus).
- ``like`` is SQL LIKE with backslash escapes, case-sensitive, over the whole value: ``%`` any run
  of characters, ``_`` exactly one character, ``\\%`` ``\\_`` ``\\\\`` the literal characters;
  any other backslash is invalid input. Milvus runs exact and prefix patterns everywhere, other
  patterns only with ``like="full"`` and without literal ``%``, ``_`` or backslash.
- STRING_LIST: ``contains`` one string, ``containsAny`` / ``containsAll`` a non-empty list.
- Filter strings may not hold NUL (PostgreSQL text cannot) or lone surrogates.
"""

from store.filters.evaluator import evaluate
from store.filters.milvus import (
    LikeSupport,
    prefix_upper_bound,
    quote,
    to_milvus,
)
from store.filters.parse import check_shape, parse_filter
from store.filters.sql import to_sql
from store.filters.tree import (
    ID_FIELD,
    OPERATORS,
    And,
    Compare,
    Filter,
    IsNull,
    Like,
    LikePattern,
    Not,
    Op,
    Or,
    Wildcard,
)

__all__ = [
    "ID_FIELD",
    "OPERATORS",
    "And",
    "Compare",
    "Filter",
    "IsNull",
    "Like",
    "LikePattern",
    "LikeSupport",
    "Not",
    "Op",
    "Or",
    "Wildcard",
    "check_shape",
    "evaluate",
    "parse_filter",
    "prefix_upper_bound",
    "quote",
    "to_milvus",
    "to_sql",
]
