"""The ``Filter`` input: a node is a combinator or one field with exactly one operator."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

_OPERATORS = (
    "eq", "ne", "in_", "not_in", "gt", "gte", "lt", "lte", "like", "contains",
    "contains_any", "contains_all", "is_null",
)  # fmt: skip
_NAMES = {"in_": "in", "not_in": "notIn", "contains_any": "containsAny",
          "contains_all": "containsAll", "is_null": "isNull"}  # fmt: skip


@strawberry.input(
    description=(
        "One node: either a combinator (and / or / not) or `field` with exactly one operator. "
        "A comparison on an absent value is false (ne and notIn too); `not` inverts a node. "
        "Operators: STRING eq ne in notIn gt gte lt lte like isNull; INT, FLOAT, DATETIME eq ne "
        "in notIn gt gte lt lte isNull; BOOL eq ne isNull; STRING_LIST contains containsAny "
        "containsAll isNull; JSON isNull; id (always filterable) as STRING without isNull. "
        "`like` is SQL LIKE: % any run, _ one character, backslash escapes; case-sensitive."
    )
)
class Filter:
    and_: list[Filter] | None = strawberry.field(name="and", default=strawberry.UNSET)
    or_: list[Filter] | None = strawberry.field(name="or", default=strawberry.UNSET)
    not_: Filter | None = strawberry.field(name="not", default=strawberry.UNSET)
    field: str | None = strawberry.UNSET
    eq: JSON | None = strawberry.UNSET
    ne: JSON | None = strawberry.UNSET
    in_: list[JSON] | None = strawberry.field(name="in", default=strawberry.UNSET)
    not_in: list[JSON] | None = strawberry.UNSET
    gt: JSON | None = strawberry.UNSET
    gte: JSON | None = strawberry.UNSET
    lt: JSON | None = strawberry.UNSET
    lte: JSON | None = strawberry.UNSET
    like: str | None = strawberry.UNSET
    contains: JSON | None = strawberry.UNSET
    contains_any: list[JSON] | None = strawberry.UNSET
    contains_all: list[JSON] | None = strawberry.UNSET
    is_null: bool | None = strawberry.UNSET

    def to_dict(self) -> dict[str, Any]:
        """Only the keys the client set, with the contract's names, for ``parse_filter``."""
        out: dict[str, Any] = {}
        if self.and_ is not strawberry.UNSET:
            out["and"] = None if self.and_ is None else [f.to_dict() for f in self.and_]
        if self.or_ is not strawberry.UNSET:
            out["or"] = None if self.or_ is None else [f.to_dict() for f in self.or_]
        if self.not_ is not strawberry.UNSET:
            out["not"] = None if self.not_ is None else self.not_.to_dict()
        if self.field is not strawberry.UNSET:
            out["field"] = self.field
        for attr in _OPERATORS:
            value = getattr(self, attr)
            if value is not strawberry.UNSET:
                out[_NAMES.get(attr, attr)] = value
        return out
