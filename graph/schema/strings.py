"""``store.text``'s string rule at the edge: every string a root field receives is checked once,
after coercion, so document literals and variables are checked alike, before any use case runs.

``ClientStrings`` is a field extension on each root field (root fields are the only ones with
arguments). It walks the converted arguments: strings, lists, input objects and JSON values (keys
included). Identifier arguments and input fields (ids, tenants, names, cursors, models) get the
identifier rule, everything else the free-text rule. One argument is left to the use case:
``upsertRecords(records:)``, whose records are checked one by one (``store.writes.incoming``), so
that ``atomic: false`` writes the good records of a batch with a bad one. A refused string answers
``BAD_USER_INPUT`` naming the argument path (``input.fields[2].name``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from strawberry.extensions import FieldExtension
from strawberry.types import Info
from strawberry.types.base import has_object_definition
from strawberry.utils.str_converters import to_camel_case

from store import InvalidInput, Problem, identifier_problem, text_problem

# Python names of the arguments and input fields that identify something.
IDENTIFIERS = frozenset(
    {"collection", "name", "id", "ids", "near_id", "tenant", "after", "model", "version", "field"}
)
MAX_PROBLEMS = 20


class ClientStrings(FieldExtension):
    """Refuse the field's call when a string argument breaks the rule.

    ``skip``: Python names of arguments checked by their use case instead."""

    def __init__(self, *, skip: frozenset[str] = frozenset()) -> None:
        self.skip = skip

    async def resolve_async(
        self, next_: Callable[..., Awaitable[Any]], source: Any, info: Info, **kwargs: Any
    ) -> Any:
        problems = [
            p for name, value in kwargs.items() if name not in self.skip for p in _walk(name, value)
        ]
        if problems:
            raise InvalidInput.of(problems[:MAX_PROBLEMS], what="strings")
        return await next_(source, info, **kwargs)


def _walk(name: str, value: Any) -> Iterator[Problem]:
    yield from _check(to_camel_case(name), value, identifier=name in IDENTIFIERS)


def _check(path: str, value: Any, *, identifier: bool) -> Iterator[Problem]:
    if isinstance(value, str):
        rule = identifier_problem if identifier else text_problem
        if problem := rule(value, what="string"):
            yield Problem(problem, path=path)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            yield from _check(f"{path}[{i}]", item, identifier=identifier)
    elif isinstance(value, dict):  # a JSON value: its keys and strings are free text
        for key, item in value.items():
            if isinstance(key, str) and (problem := text_problem(key, what="key")):
                yield Problem(problem, path=path)
            else:
                yield from _check(f"{path}.{key}", item, identifier=False)
    elif has_object_definition(value):  # an input object
        for field in value.__strawberry_definition__.fields:
            item = getattr(value, field.python_name, None)
            if item is not None:
                name = field.graphql_name or to_camel_case(field.python_name)
                yield from _check(
                    f"{path}.{name}", item, identifier=field.python_name in IDENTIFIERS
                )


__all__ = ["IDENTIFIERS", "ClientStrings"]
