"""The filter tree: a validated ``where`` argument, independent of any backend.

Nodes are frozen and hold canonical values (``store.fields.canonical``), so every compiler sees the
same thing. Field names are stored as names; compilers look the declared ``FieldSpec`` up again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from store.records import FieldSpec, FieldType

ID_FIELD = "id"
"""The record id: always filterable, never absent, compared as a string."""

ID_SPEC = FieldSpec(name=ID_FIELD, type=FieldType.STRING, required=True)


class Op(enum.StrEnum):
    """Leaf operators, named as in the GraphQL ``Filter`` input."""

    EQ = "eq"
    NE = "ne"
    IN = "in"
    NOT_IN = "notIn"
    GT = "gt"
    GTE = "gte"
    LT = "lt"
    LTE = "lte"
    LIKE = "like"
    CONTAINS = "contains"
    CONTAINS_ANY = "containsAny"
    CONTAINS_ALL = "containsAll"
    IS_NULL = "isNull"


LIST_OPS = frozenset({Op.IN, Op.NOT_IN, Op.CONTAINS_ANY, Op.CONTAINS_ALL})
"""Operators whose value is a non-empty list."""

_ORDERED = frozenset({Op.EQ, Op.NE, Op.IN, Op.NOT_IN, Op.GT, Op.GTE, Op.LT, Op.LTE})

OPERATORS: Mapping[FieldType, frozenset[Op]] = {
    FieldType.STRING: _ORDERED | {Op.LIKE, Op.IS_NULL},
    FieldType.INT: _ORDERED | {Op.IS_NULL},
    FieldType.FLOAT: _ORDERED | {Op.IS_NULL},
    FieldType.DATETIME: _ORDERED | {Op.IS_NULL},
    FieldType.BOOL: frozenset({Op.EQ, Op.NE, Op.IS_NULL}),
    FieldType.STRING_LIST: frozenset({Op.CONTAINS, Op.CONTAINS_ANY, Op.CONTAINS_ALL, Op.IS_NULL}),
    FieldType.JSON: frozenset({Op.IS_NULL}),
}
ID_OPERATORS = _ORDERED | {Op.LIKE}


def operators_for(spec: FieldSpec) -> frozenset[Op]:
    return ID_OPERATORS if spec.name == ID_FIELD else OPERATORS[spec.type]


class Wildcard(enum.Enum):
    ANY = "%"
    """Any run of characters, including none."""
    ONE = "_"
    """Exactly one character (one code point)."""


LikePart: TypeAlias = "str | Wildcard"


@dataclass(frozen=True, slots=True)
class LikePattern:
    """A ``like`` pattern: SQL LIKE with backslash as the escape character.

    ``%`` matches any run of characters (including none), ``_`` exactly one character; ``\\%``,
    ``\\_`` and ``\\\\`` are a literal ``%``, ``_`` and backslash; a backslash before anything
    else is invalid. Matching is case-sensitive and covers the whole value.

    ``parts`` holds non-empty literal runs and wildcards; adjacent literals are merged and a run
    of ``%`` is one ``%``.
    """

    parts: tuple[LikePart, ...]

    @classmethod
    def parse(cls, text: str) -> LikePattern:
        """Parse ``text``; raise ``ValueError`` with a readable message if it is malformed."""
        parts: list[LikePart] = []
        literal: list[str] = []

        def flush() -> None:
            if literal:
                parts.append("".join(literal))
                literal.clear()

        i = 0
        while i < len(text):
            ch = text[i]
            if ch == "\\":
                if i + 1 >= len(text) or text[i + 1] not in "%_\\":
                    raise ValueError(
                        "a backslash must be followed by %, _ or another backslash "
                        "(write \\\\ for a literal backslash)"
                    )
                literal.append(text[i + 1])
                i += 2
                continue
            if ch in "%_":
                flush()
                wildcard = Wildcard(ch)
                if not (wildcard is Wildcard.ANY and parts and parts[-1] is Wildcard.ANY):
                    parts.append(wildcard)
            else:
                literal.append(ch)
            i += 1
        flush()
        return cls(tuple(parts))

    @property
    def exact(self) -> str | None:
        """The one value this pattern matches, if it has no wildcard."""
        if not self.parts:
            return ""
        if len(self.parts) == 1 and isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    @property
    def prefix(self) -> str | None:
        """``p`` if the pattern is ``p%`` (``p`` may be empty), else None."""
        if self.parts == (Wildcard.ANY,):
            return ""
        if (
            len(self.parts) == 2
            and isinstance(self.parts[0], str)
            and self.parts[1] is Wildcard.ANY
        ):
            return self.parts[0]
        return None

    def literals(self) -> tuple[str, ...]:
        return tuple(p for p in self.parts if isinstance(p, str))

    def render(self, *, escape: Mapping[str, str], any_: str, one: str) -> str:
        """The pattern in a backend's syntax: ``escape`` maps literal characters to their escaped
        form, ``any_`` and ``one`` are that backend's wildcards."""
        out: list[str] = []
        for part in self.parts:
            if part is Wildcard.ANY:
                out.append(any_)
            elif part is Wildcard.ONE:
                out.append(one)
            else:
                assert isinstance(part, str)
                out.append("".join(escape.get(ch, ch) for ch in part))
        return "".join(out)

    def matches(self, value: str) -> bool:
        """Whole-value match in O(len(value) * len(pattern)): no regex, so no backtracking."""
        segments = _segments(self.parts)
        if len(segments) == 1:
            return len(value) == len(segments[0]) and _fits(segments[0], value, 0)
        first, *middle, last = segments
        end = len(value) - len(last)
        if end < len(first) or not _fits(first, value, 0) or not _fits(last, value, end):
            return False
        pos = len(first)
        for segment in middle:
            found = _find(segment, value, pos, end)
            if found < 0:
                return False
            pos = found + len(segment)
        return True


# A segment is the pattern between two ``%``: each item a literal character or None for ``_``.
_Segment: TypeAlias = tuple["str | None", ...]


def _segments(parts: tuple[LikePart, ...]) -> list[_Segment]:
    segments: list[_Segment] = []
    current: list[str | None] = []
    for part in parts:
        if part is Wildcard.ANY:
            segments.append(tuple(current))
            current = []
        elif part is Wildcard.ONE:
            current.append(None)
        else:
            assert isinstance(part, str)
            current.extend(part)
    segments.append(tuple(current))
    return segments


def _fits(segment: _Segment, value: str, at: int) -> bool:
    return all(c is None or value[at + k] == c for k, c in enumerate(segment))


def _find(segment: _Segment, value: str, start: int, stop: int) -> int:
    """The leftmost position in ``[start, stop - len(segment)]`` where ``segment`` fits, or -1.

    Leftmost is enough: between ``%`` wildcards an earlier match never rules out a later one.
    """
    if None not in segment:
        return value.find("".join(c for c in segment if c is not None), start, stop)
    for at in range(start, stop - len(segment) + 1):
        if _fits(segment, value, at):
            return at
    return -1


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``. ``value`` is canonical for the field's type; for ``in``, ``notIn``,
    ``containsAny`` and ``containsAll`` it is a non-empty tuple without duplicates."""

    field: str
    op: Op
    value: Any


@dataclass(frozen=True, slots=True)
class Like:
    field: str
    pattern: LikePattern


@dataclass(frozen=True, slots=True)
class IsNull:
    """``null=True`` matches an absent value (missing or null), ``null=False`` a present one."""

    field: str
    null: bool


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Filter


Filter: TypeAlias = And | Or | Not | Compare | Like | IsNull


def child_paths(node: And | Or | Not, path: str) -> list[tuple[Filter, str]]:
    """Each child with the input path it was parsed from (``where.and[1]``), for error messages
    raised after parsing: the tree has the input's shape."""
    if isinstance(node, Not):
        return [(node.item, f"{path}.not")]
    key = "and" if isinstance(node, And) else "or"
    return [(item, f"{path}.{key}[{i}]") for i, item in enumerate(node.items)]
