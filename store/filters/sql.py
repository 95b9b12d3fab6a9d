"""Filter tree -> SQLAlchemy boolean over ``RecordRow`` (SQLite JSON1 or PostgreSQL JSONB).

Every value is a bound parameter, and so is every JSON key or path. Each leaf is
``present AND test``, where ``present`` is never NULL (the key exists and is not JSON null) and
``test`` is not NULL when the value is present: the leaf is strictly true or false, so ``NOT``
behaves as in ``evaluate`` (two-valued logic, an absent value fails every comparison).

Strings compare in code point order, as in Python and Milvus: SQLite's default BINARY collation
compares UTF-8 bytes, and PostgreSQL gets ``COLLATE "C"``. ``like`` is case-sensitive in both:
PostgreSQL ``LIKE ... ESCAPE '\\'``, SQLite ``GLOB`` (its LIKE ignores ASCII case).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    Double,
    String,
    Text,
    and_,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import col

from store.filters.tree import (
    ID_FIELD,
    ID_SPEC,
    And,
    Compare,
    Filter,
    IsNull,
    Like,
    LikePattern,
    Not,
    Op,
    Or,
)
from store.records import FieldSpec, FieldType
from store.sql.tables import RecordRow

DIALECTS = ("sqlite", "postgresql")

# SQLite parses a flat ``a OR b OR ...`` into a tree as deep as the chain and refuses one over
# 1,000 deep (a filter at its list limit): long chains go as parenthesized groups of this many.
CHAIN = 16


class Parenthesized(ColumnElement[bool]):
    """``(inner)``, kept as a group: SQLAlchemy flattens nested ``and_``/``or_`` of one kind."""

    type = Boolean()
    inherit_cache = True
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner


@compiles(Parenthesized)
def _parenthesized(element: Parenthesized, compiler: Any, **kw: Any) -> str:
    return "(" + str(compiler.process(element.inner, **kw)) + ")"


def chain(terms: Sequence[ColumnElement[bool]], combine: Any) -> ColumnElement[bool]:
    """``combine(*terms)`` as nested groups of at most ``CHAIN`` terms."""
    grouped = list(terms)
    while len(grouped) > CHAIN:
        grouped = [
            Parenthesized(combine(*grouped[i : i + CHAIN])) for i in range(0, len(grouped), CHAIN)
        ]
    return combine(*grouped)  # type: ignore[no-any-return]


_GLOB_ESCAPES = {"*": "[*]", "?": "[?]", "[": "[[]"}
_LIKE_ESCAPES = {"\\": "\\\\", "%": "\\%", "_": "\\_"}


def to_sql(f: Filter, *, fields: Sequence[FieldSpec], dialect: str) -> ColumnElement[bool]:
    """A WHERE clause over ``RecordRow`` for ``f``; ``dialect`` is ``sqlite`` or ``postgresql``
    (``engine.dialect.name``). The caller adds the collection (and tenant) conditions."""
    if dialect == "sqlite":
        return _SQLite(fields).render(f)
    if dialect == "postgresql":
        return _PostgreSQL(fields).render(f)
    raise ValueError(f"no filter compiler for SQL dialect {dialect!r}; expected one of {DIALECTS}")


class _Compiler:
    """Shared structure; subclasses say how to read a metadata value in their dialect."""

    def __init__(self, fields: Sequence[FieldSpec]) -> None:
        self.fields = {f.name: f for f in fields}

    # -- dialect hooks -------------------------------------------------------------------------

    def present(self, name: str) -> ColumnElement[bool]:
        raise NotImplementedError

    def text(self, name: str) -> ColumnElement[str]:
        raise NotImplementedError

    def number(self, name: str, ftype: FieldType) -> ColumnElement[Any]:
        raise NotImplementedError

    def is_bool(self, name: str, value: bool) -> ColumnElement[bool]:
        raise NotImplementedError

    def list_has(self, name: str, op: Op, values: tuple[str, ...]) -> ColumnElement[bool]:
        raise NotImplementedError

    def id_column(self) -> ColumnElement[str]:
        raise NotImplementedError

    def like(self, column: ColumnElement[str], pattern: LikePattern) -> ColumnElement[bool]:
        raise NotImplementedError

    # -- structure -----------------------------------------------------------------------------

    def render(self, f: Filter) -> ColumnElement[bool]:
        if isinstance(f, And):
            return chain([self.render(item) for item in f.items], and_)
        if isinstance(f, Or):
            return chain([self.render(item) for item in f.items], or_)
        if isinstance(f, Not):
            return not_(self.render(f.item))
        spec = self.spec(f.field)
        if spec.name == ID_FIELD:
            # The primary key is never NULL: no guard needed.
            if isinstance(f, IsNull):
                return false() if f.null else true()
            return self.test(spec, f, self.id_column())
        present = self.present(spec.name)
        if isinstance(f, IsNull):
            return not_(present) if f.null else present
        return and_(present, self.test(spec, f, None))

    def spec(self, name: str) -> FieldSpec:
        spec = ID_SPEC if name == ID_FIELD else self.fields.get(name)
        if spec is None:
            raise ValueError(f"filter names {name!r}, which the given fields do not declare")
        return spec

    def test(
        self, spec: FieldSpec, f: Compare | Like, id_column: ColumnElement[str] | None
    ) -> ColumnElement[bool]:
        if spec.type is FieldType.STRING_LIST:
            assert isinstance(f, Compare)
            values = f.value if isinstance(f.value, tuple) else (f.value,)
            return self.list_has(spec.name, f.op, values)
        if spec.type in (FieldType.STRING, FieldType.DATETIME):
            # Canonical date-times sort as text.
            column: ColumnElement[Any] = (
                id_column if id_column is not None else self.text(spec.name)
            )
        elif spec.type is FieldType.BOOL:
            assert isinstance(f, Compare)
            return self.is_bool(spec.name, f.value if f.op is Op.EQ else not f.value)
        elif spec.type in (FieldType.INT, FieldType.FLOAT):
            column = self.number(spec.name, spec.type)
        else:
            raise ValueError(f"no SQL test for {spec.type.value} {f!r}")  # parse_filter refuses
        if isinstance(f, Like):
            return self.like(column, f.pattern)
        return _compare(column, f.op, f.value)


def _compare(column: ColumnElement[Any], op: Op, value: Any) -> ColumnElement[bool]:
    expr: ColumnElement[bool]
    if op is Op.EQ:
        expr = column == value
    elif op is Op.NE:
        expr = column != value
    elif op is Op.GT:
        expr = column > value
    elif op is Op.GTE:
        expr = column >= value
    elif op is Op.LT:
        expr = column < value
    elif op is Op.LTE:
        expr = column <= value
    elif op is Op.IN:
        expr = column.in_(list(value))
    elif op is Op.NOT_IN:
        expr = column.not_in(list(value))
    else:  # pragma: no cover - parse_filter only lets these through
        raise ValueError(f"no SQL comparison for {op.value}")
    return expr


class _SQLite(_Compiler):
    """JSON1: ``json_extract`` gives SQL NULL for a missing key and for JSON null alike."""

    @staticmethod
    def path(name: str) -> str:
        return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def extract(self, name: str, type_: Any) -> ColumnElement[Any]:
        return func.json_extract(col(RecordRow.meta), self.path(name), type_=type_)

    def present(self, name: str) -> ColumnElement[bool]:
        return self.extract(name, Text).is_not(None)

    def text(self, name: str) -> ColumnElement[str]:
        return self.extract(name, Text)

    def number(self, name: str, ftype: FieldType) -> ColumnElement[Any]:
        return self.extract(name, BigInteger if ftype is FieldType.INT else Double)

    def is_bool(self, name: str, value: bool) -> ColumnElement[bool]:
        # json_extract turns JSON booleans into 1/0; json_type still tells true from false.
        kind = func.json_type(col(RecordRow.meta), self.path(name), type_=Text)
        return kind == ("true" if value else "false")

    def list_has(self, name: str, op: Op, values: tuple[str, ...]) -> ColumnElement[bool]:
        def any_of(wanted: Sequence[str]) -> ColumnElement[bool]:
            items = func.json_each(col(RecordRow.meta), self.path(name)).table_valued("value")
            match = items.c.value == wanted[0] if len(wanted) == 1 else items.c.value.in_(wanted)
            return exists(select(literal(1)).select_from(items).where(match))

        if op is Op.CONTAINS_ALL:
            return chain([any_of([v]) for v in values], and_)
        return any_of(values)

    def id_column(self) -> ColumnElement[str]:
        return col(RecordRow.id).collate("BINARY")  # the default, said outright

    def like(self, column: ColumnElement[str], pattern: LikePattern) -> ColumnElement[bool]:
        glob = pattern.render(escape=_GLOB_ESCAPES, any_="*", one="?")
        return column.op("GLOB", is_comparison=True)(literal(glob, String))


class _PostgreSQL(_Compiler):
    """JSONB: ``->>`` gives SQL NULL for a missing key and for JSON null alike."""

    def doc(self) -> ColumnElement[Any]:
        return type_coerce(col(RecordRow.meta), JSONB())

    def element(self, name: str) -> ColumnElement[Any]:
        return self.doc().op("->", return_type=JSONB())(literal(name, Text))

    def raw_text(self, name: str) -> ColumnElement[str]:
        return self.doc().op("->>", return_type=Text())(literal(name, Text))

    def present(self, name: str) -> ColumnElement[bool]:
        return self.raw_text(name).is_not(None)

    def text(self, name: str) -> ColumnElement[str]:
        return self.raw_text(name).collate("C")

    def number(self, name: str, ftype: FieldType) -> ColumnElement[Any]:
        return cast(self.raw_text(name), BigInteger if ftype is FieldType.INT else Double)

    def is_bool(self, name: str, value: bool) -> ColumnElement[bool]:
        return self.raw_text(name) == ("true" if value else "false")

    def list_has(self, name: str, op: Op, values: tuple[str, ...]) -> ColumnElement[bool]:
        # ``?``, ``?|`` and ``?&`` test an array's top-level string elements.
        element = self.element(name)
        if op is Op.CONTAINS:
            return element.op("?", return_type=Boolean)(literal(values[0], Text))
        operator = "?|" if op is Op.CONTAINS_ANY else "?&"
        return element.op(operator, return_type=Boolean)(literal(list(values), ARRAY(Text)))

    def id_column(self) -> ColumnElement[str]:
        return col(RecordRow.id).collate("C")

    def like(self, column: ColumnElement[str], pattern: LikePattern) -> ColumnElement[bool]:
        escaped = pattern.render(escape=_LIKE_ESCAPES, any_="%", one="_")
        return column.like(literal(escaped, Text), escape="\\")
