"""Filter tree -> Milvus boolean expression.

Column layout (``store.fields``): each filterable field is a scalar column of its own name, ``id``
is the VARCHAR primary key, and an absent value is stored as the type's zero with the field's name
listed in the ARRAY<VARCHAR> column ``_absent``. So a leaf on a non-required field reads
``(not array_contains(_absent, "price") and price > 5)``: a comparison on an absent value is false
and ``not`` inverts it, exactly as in ``evaluate``. The guard is left out where the stored zero
cannot pass the test anyway (``price > 5``, ``section == "libs"``): the leaf is then false for an
absent value without it. That is most filters, and it matters: ``array_contains`` sends Milvus
Lite to its row-by-row Python evaluator, many times slower (docs/measurements.md, "store").

Values are rendered as literals (Milvus Lite 3.x and Milvus 2.3 have no ``filter_params``):
strings in double quotes escaping only ``\\``, ``"``, newline, carriage return and tab, the escapes
both Milvus Lite's tokenizer and the server grammar read the same way; every other character,
control characters included, goes through verbatim (checked against Milvus Lite 3.2.2 and Milvus
2.3.5). Field names come from the declared schema only and must be identifiers.

``like`` never relies on escapes inside a Milvus LIKE pattern: Milvus Lite evaluates a pattern
without escape support when the expression also uses ``array_contains`` and with it otherwise, and
Milvus 2.3 keeps the backslash in prefix operands. So an exact pattern becomes ``==``, a prefix
pattern ``p%`` a range ``f >= "p" and f < "q"`` (``q`` = ``p`` with its last character
incremented), and only other patterns become ``like`` (``like="full"`` or ``"lite"`` backends),
rejected if they hold a literal ``%``, ``_`` or backslash. Milvus Lite's LIKE is a regex ending
in ``$``, which also matches before a final newline: a pattern ending in a literal character gets
``and not f like "%\n"`` (exact on every backend), and on Lite (``like="lite"``) a pattern ending
in ``_`` or a newline is refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Literal

from store.errors import InvalidInput, Problem
from store.fields import ABSENT_COLUMN, INT64_MAX, INT64_MIN, ZERO
from store.fields import to_milvus as milvus_value
from store.filters.evaluator import COMPARE
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
    Wildcard,
    child_paths,
)
from store.records import FieldSpec, FieldType

LikeSupport = Literal["prefix", "full", "lite"]

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"})
_SYMBOLS = {Op.EQ: "==", Op.NE: "!=", Op.GT: ">", Op.GTE: ">=", Op.LT: "<", Op.LTE: "<="}
_FUNCTIONS = {
    Op.CONTAINS: "array_contains",
    Op.CONTAINS_ANY: "array_contains_any",
    Op.CONTAINS_ALL: "array_contains_all",
}
# Constant truth values for tests on fields that are never absent; ``id`` is a string.
_TRUE = f'({ID_FIELD} >= "")'
_FALSE = f'({ID_FIELD} < "")'
_MAX_CODE_POINT = 0x10FFFF


def to_milvus(
    f: Filter,
    *,
    fields: Sequence[FieldSpec],
    like: LikeSupport = "full",
    path: str = "where",
) -> str:
    """The Milvus ``filter`` expression for ``f``, values as escaped literals.

    ``like="prefix"`` is for servers whose LIKE takes only ``abc%`` (Milvus 2.3): other patterns
    raise ``InvalidInput`` naming the input ``path`` of each.
    """
    renderer = _Renderer(fields, like)
    expr = renderer.render(f, path)
    if renderer.problems:
        raise InvalidInput.of(renderer.problems, what="filter")
    return expr


# Milvus 2.3 refuses a flat and/or chain of about 60 terms ("unsupported expr proto node") and
# takes 1,000 when they are nested, so long chains are grouped into nested runs of at most this.
CHAIN = 16


def _chain(terms: list[str], joiner: str) -> str:
    """``(t1 joiner t2 ...)``, as nested groups of at most ``CHAIN`` terms."""
    while len(terms) > CHAIN:
        terms = ["(" + joiner.join(terms[i : i + CHAIN]) + ")" for i in range(0, len(terms), CHAIN)]
    return "(" + joiner.join(terms) + ")"


def quote(text: str) -> str:
    """A Milvus string literal for ``text``."""
    if "\x00" in text:
        raise ValueError("Milvus string literals cannot hold NUL")  # parse_filter rejects it
    return '"' + text.translate(_ESCAPES) + '"'


def literal(value: Any) -> str:
    """A Milvus literal for a Milvus column value (bool, int, finite float, str, or a list)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("Milvus has no literal for a non-finite float")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    raise TypeError(f"no Milvus literal for {type(value).__name__}")


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string that starts with ``prefix`` (None if there is none),
    in code point order, which is UTF-8 byte order: Milvus Lite and Milvus agree on it."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1])
        if code < _MAX_CODE_POINT:
            code += 1
            if 0xD800 <= code <= 0xDFFF:  # no string holds a surrogate: skip past them
                code = 0xE000
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


class _Renderer:
    def __init__(self, fields: Sequence[FieldSpec], like: LikeSupport) -> None:
        if like not in ("prefix", "full", "lite"):
            raise ValueError(f"like must be 'prefix', 'full' or 'lite', not {like!r}")
        self.fields = {f.name: f for f in fields}
        self.like = like
        self.problems: list[Problem] = []

    def value(self, ftype: FieldType, value: Any) -> str:
        """A filter value in the expression, as a literal."""
        return literal(self.column_value(ftype, value))

    @staticmethod
    def column_value(ftype: FieldType, value: Any) -> Any:
        if isinstance(value, tuple):
            return [milvus_value(ftype, v) for v in value]
        return milvus_value(ftype, value)

    def render(self, f: Filter, path: str) -> str:
        if isinstance(f, And | Or):
            joiner = " and " if isinstance(f, And) else " or "
            return _chain([self.render(c, p) for c, p in child_paths(f, path)], joiner)
        if isinstance(f, Not):
            ((item, item_path),) = child_paths(f, path)
            return f"(not {self.render(item, item_path)})"
        spec = self.spec(f.field)
        if isinstance(f, IsNull):
            if spec.required:
                return _FALSE if f.null else _TRUE
            test = f"array_contains({ABSENT_COLUMN}, {quote(spec.name)})"
            return test if f.null else f"(not {test})"
        if isinstance(f, Like):
            test = self.like_test(spec, f.pattern, f"{path}.like")
        else:
            test = self.compare(spec, f)
        if spec.required or not self.zero_passes(spec, f):
            return f"({test})"
        return f"(not array_contains({ABSENT_COLUMN}, {quote(spec.name)}) and {test})"

    def zero_passes(self, spec: FieldSpec, f: Compare | Like) -> bool:
        """Whether the value stored for an absent field passes the leaf's test."""
        zero = ZERO[spec.type]
        if isinstance(f, Like):
            return not isinstance(zero, str) or f.pattern.matches(zero)
        element = FieldType.STRING if spec.type is FieldType.STRING_LIST else spec.type
        try:
            return bool(COMPARE[f.op](zero, self.column_value(element, f.value)))
        except TypeError:  # not comparable with the zero: keep the guard
            return True

    def spec(self, name: str) -> FieldSpec:
        spec = ID_SPEC if name == ID_FIELD else self.fields.get(name)
        if spec is None:
            raise ValueError(f"filter names {name!r}, which the given fields do not declare")
        if not _IDENTIFIER.fullmatch(spec.name):
            raise ValueError(f"field name {spec.name!r} is not a Milvus identifier")
        return spec

    def compare(self, spec: FieldSpec, f: Compare) -> str:
        column = spec.name
        if spec.type is FieldType.INT and INT64_MIN in (
            f.value if isinstance(f.value, tuple) else (f.value,)
        ):
            return self.int64_min(column, f.op, f.value)
        element = FieldType.STRING if spec.type is FieldType.STRING_LIST else spec.type
        value = self.value(element, f.value)
        if f.op in _SYMBOLS:
            return f"{column} {_SYMBOLS[f.op]} {value}"
        if f.op is Op.IN:
            return f"{column} in {value}"
        if f.op is Op.NOT_IN:
            return f"not ({column} in {value})"
        return f"{_FUNCTIONS[f.op]}({column}, {value})"

    def int64_min(self, column: str, op: Op, value: Any) -> str:
        """A comparison with the least INT64 without writing it: Milvus reads ``-N`` as ``-(N)``
        and ``N`` = 2**63 overflows (Milvus 2.3: "strconv.ParseInt: value out of range")."""
        above = f"{column} >= {self.value(FieldType.INT, INT64_MIN + 1)}"
        at_min = f"{column} < {self.value(FieldType.INT, INT64_MIN + 1)}"
        if op in (Op.EQ, Op.LTE):
            return at_min
        if op in (Op.NE, Op.GT):
            return above
        if op is Op.GTE:  # every value
            return f"{column} <= {self.value(FieldType.INT, INT64_MAX)}"
        if op is Op.LT:  # no value
            return f"{column} > {self.value(FieldType.INT, INT64_MAX)}"
        rest = tuple(v for v in value if v != INT64_MIN)
        if op is Op.IN:
            return (
                f"({column} in {self.value(FieldType.INT, rest)} or {at_min})" if rest else at_min
            )
        return (
            f"(not ({column} in {self.value(FieldType.INT, rest)}) and {above})" if rest else above
        )

    def like_test(self, spec: FieldSpec, pattern: LikePattern, path: str) -> str:
        column = spec.name
        exact = pattern.exact
        if exact is not None:
            return f"{column} == {self.value(FieldType.STRING, exact)}"
        prefix = pattern.prefix
        if prefix is not None:
            lower = f"{column} >= {self.value(FieldType.STRING, prefix)}"
            upper = prefix_upper_bound(prefix)
            if upper is None:
                return lower
            return f"{lower} and {column} < {self.value(FieldType.STRING, upper)}"
        if self.like == "prefix":
            self.problems.append(
                Problem(
                    path=path,
                    message="this Milvus backend only supports exact and prefix patterns "
                    "('abc' or 'abc%') in like",
                )
            )
            return _FALSE
        if any(ch in "%_\\" for text in pattern.literals() for ch in text):
            self.problems.append(
                Problem(
                    path=path,
                    message="Milvus can match a literal %, _ or backslash only in exact or "
                    "prefix patterns ('abc' or 'abc%')",
                )
            )
            return _FALSE
        last = pattern.parts[-1]
        if self.like == "lite" and (
            last is Wildcard.ONE or (isinstance(last, str) and last.endswith("\n"))
        ):
            # Milvus Lite runs LIKE as a Python regex ending in ``$``, which also matches before a
            # final newline: 'ab_' would match "abc\n". No rewrite is exact for these patterns.
            self.problems.append(
                Problem(
                    path=path,
                    message="Milvus Lite cannot run a like pattern that ends with _ or a newline "
                    "exactly; end the pattern with % or another literal character",
                )
            )
            return _FALSE
        text = pattern.render(escape={}, any_="%", one="_")
        test = f"{column} like {self.value(FieldType.STRING, text)}"
        if isinstance(last, str):
            # No value ending in a newline can match a pattern that ends in another literal
            # character, so excluding them is exact everywhere; on Milvus Lite it removes the
            # extra matches of its regex ``$`` (a value with one more trailing newline).
            test = f"({test} and not {column} like {self.value(FieldType.STRING, '%' + chr(10))})"
        return test
