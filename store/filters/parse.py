"""From the GraphQL ``Filter`` input (as a plain dict) to a validated, canonical filter tree.

Two passes, so the limits cost no I/O: ``check_shape`` bounds nesting depth and list sizes
without a schema (the use cases run it before they look the collection up), and
``parse_filter`` validates everything against the collection's declared fields (the same limits
included, with the same messages).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from store.errors import InvalidInput, Problem
from store.fields import DEFAULT_STRING_MAX, FieldValueError, canonical
from store.filters.tree import (
    ID_FIELD,
    ID_SPEC,
    LIST_OPS,
    And,
    Compare,
    Filter,
    IsNull,
    Like,
    LikePattern,
    Not,
    Op,
    Or,
    operators_for,
)
from store.records import FieldSpec, FieldType
from store.text import text_problem

COMBINATORS = ("and", "or", "not")
_OPS = {op.value: op for op in Op}
_LIST_KEYS = frozenset(op.value for op in LIST_OPS)


def check_shape(
    raw: Mapping[str, Any], *, max_depth: int, max_list: int, path: str = "where"
) -> None:
    """Raise ``InvalidInput`` when ``raw`` nests deeper than ``max_depth`` or has a list
    (``and``/``or`` items, operator values) longer than ``max_list``.

    Needs no schema, so it runs before any store call; anything else wrong is left to
    ``parse_filter``, which reports these problems the same way. Iterative: the input may be as
    deep as the request decoder allows.
    """
    _check_limits(max_depth, max_list)
    problems: list[Problem] = []
    stack: list[tuple[Any, str, int]] = [(raw, path, 1)]
    while stack:
        node, here, depth = stack.pop()
        if not isinstance(node, Mapping):
            continue
        if depth > max_depth:
            problems.append(Problem(message=_too_deep(max_depth), path=here))
            continue
        children: list[tuple[Any, str, int]] = []
        for key, value in node.items():
            if key == "not" and isinstance(value, Mapping):
                children.append((value, f"{here}.not", depth + 1))
            elif not _is_list(value):
                continue
            elif key in ("and", "or"):
                if len(value) > max_list:
                    problems.append(
                        Problem(message=_too_many(max_list, "filters"), path=f"{here}.{key}")
                    )
                else:
                    children.extend(
                        (v, f"{here}.{key}[{i}]", depth + 1) for i, v in enumerate(value)
                    )
            elif key in _LIST_KEYS and len(value) > max_list:
                problems.append(
                    Problem(message=_too_many(max_list, "values"), path=f"{here}.{key}")
                )
        stack.extend(reversed(children))  # depth first, in input order, as the parser reports
    if problems:
        raise InvalidInput.of(problems, what="filter")


def parse_filter(
    raw: Mapping[str, Any],
    *,
    fields: Sequence[FieldSpec],
    max_depth: int,
    max_list: int,
    path: str = "where",
) -> Filter:
    """Validate ``raw`` against the declared ``fields`` and return the filter tree.

    Every problem is collected and raised at once as ``InvalidInput`` whose problems name the
    input path (``where.and[1].field``). ``max_depth`` bounds nesting (a lone leaf is depth 1);
    ``max_list`` bounds every list: ``and``/``or`` items and operator value lists.
    """
    _check_limits(max_depth, max_list)
    parser = _Parser(fields=fields, max_depth=max_depth, max_list=max_list)
    node = parser.node(raw, path, depth=1)
    if parser.problems:
        raise InvalidInput.of(parser.problems, what="filter")
    assert node is not None
    return node


class _Parser:
    def __init__(self, *, fields: Sequence[FieldSpec], max_depth: int, max_list: int) -> None:
        self.fields = {f.name: f for f in fields if f.name != ID_FIELD}
        self.filterable = [ID_FIELD, *(f.name for f in fields if f.filterable)]
        self.max_depth = max_depth
        self.max_list = max_list
        self.problems: list[Problem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(Problem(message=message, path=path))

    def node(self, raw: Any, path: str, *, depth: int) -> Filter | None:
        if not isinstance(raw, Mapping):
            self.problem(path, "expected a filter object")
            return None
        if depth > self.max_depth:
            self.problem(path, _too_deep(self.max_depth))
            return None
        unknown = [k for k in raw if k not in COMBINATORS and k != "field" and k not in _OPS]
        for key in unknown:
            self.problem(f"{path}.{key}", "unknown filter key")
        combinators = [k for k in COMBINATORS if k in raw]
        ops = [k for k in _OPS if k in raw]
        if combinators:
            if "field" in raw or ops:
                self.problem(
                    path,
                    "a filter node is either a combinator (and, or, not) or a field with one "
                    "operator, not both",
                )
                return None
            if len(combinators) > 1:
                self.problem(
                    path, f"one combinator per node, got {', '.join(combinators)}; nest them"
                )
                return None
            return self.combinator(combinators[0], raw[combinators[0]], path, depth=depth)
        leaf = self.leaf(raw, ops, path)
        return None if unknown else leaf

    def combinator(self, key: str, value: Any, path: str, *, depth: int) -> Filter | None:
        here = f"{path}.{key}"
        if key == "not":
            if value is None:
                self.problem(here, "expected a filter object, got null")
                return None
            item = self.node(value, here, depth=depth + 1)
            return None if item is None else Not(item)
        if not _is_list(value):
            self.problem(here, "expected a list of filters")
            return None
        if not value:
            self.problem(here, "empty list; give at least one filter")
            return None
        if len(value) > self.max_list:
            self.problem(here, _too_many(self.max_list, "filters"))
            return None
        items = [self.node(v, f"{here}[{i}]", depth=depth + 1) for i, v in enumerate(value)]
        valid = tuple(i for i in items if i is not None)
        if len(valid) != len(items):
            return None
        return And(valid) if key == "and" else Or(valid)

    def leaf(self, raw: Mapping[str, Any], ops: list[str], path: str) -> Filter | None:
        name = raw.get("field")
        spec: FieldSpec | None = None
        if "field" not in raw:
            if not ops:
                self.problem(path, "empty filter: give and, or, not, or a field with one operator")
                return None
            self.problem(f"{path}.field", "missing: name the field the operator applies to")
        elif not isinstance(name, str):
            self.problem(f"{path}.field", "expected a field name")
        else:
            spec = self.resolve(name, f"{path}.field")
        if not ops:
            if spec is not None:
                allowed = _listed(operators_for(spec))
                self.problem(path, f"no operator for field {name!r}; give one of {allowed}")
            else:
                self.problem(path, "no operator; give exactly one")
            return None
        if len(ops) > 1:
            self.problem(
                path, f"one operator per filter node, got {', '.join(ops)}; combine nodes with and"
            )
            return None
        op = _OPS[ops[0]]
        here = f"{path}.{op.value}"
        if spec is None:
            return None
        if op not in operators_for(spec):
            what = "id" if spec.name == ID_FIELD else f"{spec.type.value} field {spec.name!r}"
            self.problem(
                here, f"{op.value} does not apply to {what}; use {_listed(operators_for(spec))}"
            )
            return None
        return self.operand(spec, op, raw[op.value], here)

    def resolve(self, name: str, path: str) -> FieldSpec | None:
        if name == ID_FIELD:
            return ID_SPEC
        spec = self.fields.get(name)
        listed = ", ".join(self.filterable)
        if spec is None:
            self.problem(path, f"unknown field {name!r}; filterable fields: {listed}")
            return None
        if not spec.filterable:
            self.problem(path, f"field {name!r} is not filterable; filterable fields: {listed}")
            return None
        return spec

    def operand(self, spec: FieldSpec, op: Op, value: Any, path: str) -> Filter | None:
        if op is Op.IS_NULL:
            if not isinstance(value, bool):
                self.problem(path, "expected true or false")
                return None
            return IsNull(spec.name, value)
        if value is None:
            self.problem(
                path, "null is not a value to compare with; use isNull to find absent ones"
            )
            return None
        if op is Op.LIKE:
            return self.like(spec, value, path)
        # Elements of a STRING_LIST are compared one string at a time.
        element = FieldType.STRING if spec.type is FieldType.STRING_LIST else spec.type
        if op not in LIST_OPS:
            ok, one = self.scalar(spec, element, value, path)
            return Compare(spec.name, op, one) if ok else None
        if not _is_list(value):
            self.problem(path, "expected a list of values")
            return None
        if not value:
            self.problem(path, "empty list; give at least one value")
            return None
        if len(value) > self.max_list:
            self.problem(path, _too_many(self.max_list, "values"))
            return None
        checked = [self.scalar(spec, element, v, f"{path}[{i}]") for i, v in enumerate(value)]
        if not all(ok for ok, _ in checked):
            return None
        return Compare(spec.name, op, tuple(dict.fromkeys(v for _, v in checked)))

    def scalar(self, spec: FieldSpec, ftype: FieldType, value: Any, path: str) -> tuple[bool, Any]:
        try:
            if ftype is FieldType.STRING:
                _check_text(value)
            return True, canonical(ftype, value, max_length=spec.max_length)
        except (FieldValueError, OverflowError) as exc:
            what = "id" if spec.name == ID_FIELD else f"{spec.type.value} field {spec.name!r}"
            self.problem(path, f"{exc} ({what})")
            return False, None

    def like(self, spec: FieldSpec, value: Any, path: str) -> Filter | None:
        if not isinstance(value, str):
            self.problem(path, "expected a pattern string")
            return None
        # Escapes may double a pattern's length relative to the values it matches.
        limit = 2 * (spec.max_length or DEFAULT_STRING_MAX)
        try:
            _check_text(value)
            if len(value.encode()) > limit:
                raise FieldValueError(f"pattern longer than {limit} bytes")
            pattern = LikePattern.parse(value)
        except ValueError as exc:
            self.problem(path, str(exc))
            return None
        return Like(spec.name, pattern)


def _check_text(value: Any) -> None:
    """Strings every backend can hold (``store.text``'s rule for free text)."""
    if not isinstance(value, str):
        return  # canonical() names the type
    if problem := text_problem(value, what="string"):
        raise FieldValueError(problem)


def _check_limits(max_depth: int, max_list: int) -> None:
    if max_depth < 1 or max_list < 1:
        raise ValueError("max_depth and max_list must be at least 1")


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def _too_deep(max_depth: int) -> str:
    return f"filter nested deeper than {max_depth} levels"


def _too_many(max_list: int, what: str) -> str:
    return f"more than {max_list} {what}"


def _listed(ops: frozenset[Op]) -> str:
    return ", ".join(op.value for op in Op if op in ops)
