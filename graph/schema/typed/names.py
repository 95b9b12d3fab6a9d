"""The one rule from collection and field names to GraphQL names, and the refusal of collisions.

A collection's *prefix* is its name split at underscores, each part's first letter in upper
case, joined: ``books`` -> ``Books``, ``web_pages`` -> ``WebPages``, ``webPages`` -> ``WebPages``.
From it come the root field (the prefix with a lower-case first letter: ``books``, ``webPages``),
the mutations ``upsert<Prefix>`` and ``delete<Prefix>``, and the types ``<Prefix>`` followed by
each of ``TYPE_SUFFIXES``. Declared fields keep their names (already GraphQL names).

A collection whose generated names meet another collection's, or a name of the generic schema
(a type, a root field or a mutation), is refused at ``createCollection`` with ``BAD_USER_INPUT``
naming the collision; so is a field named like a built-in field of its record type.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from store import CollectionInfo, InvalidInput

TYPE_SUFFIXES = (
    "Collection", "Record", "Filter", "Input", "Hit", "SearchResult", "RecordEdge",
    "RecordConnection",
)  # fmt: skip
# Fields of <Prefix>Record besides the declared ones; <Prefix>Input has these and the generic
# RecordInput's (``id``, ``vector`` and ``tenant`` are refused as field names by the store).
RECORD_FIELDS = frozenset({"id", "text", "tenant", "extra", "vector", "createdAt", "updatedAt"})


def prefix(collection: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in collection.split("_"))


def root_field(collection: str) -> str:
    p = prefix(collection)
    return p[:1].lower() + p[1:]


def upsert_field(collection: str) -> str:
    return f"upsert{prefix(collection)}"


def delete_field(collection: str) -> str:
    return f"delete{prefix(collection)}"


def type_name(collection: str, suffix: str) -> str:
    return prefix(collection) + suffix


def generated(collection: str) -> dict[str, str]:
    """Every schema-level name ``collection`` generates -> what it is."""
    names = {type_name(collection, s): "type" for s in TYPE_SUFFIXES}
    names[root_field(collection)] = "Query field"
    names[upsert_field(collection)] = "Mutation field"
    names[delete_field(collection)] = "Mutation field"
    return names


@dataclass(frozen=True, slots=True)
class GenericNames:
    """The names of the generic schema that no collection may generate."""

    types: frozenset[str]
    query_fields: frozenset[str]
    mutation_fields: frozenset[str]
    record_fields: frozenset[str]  # RECORD_FIELDS and the generic RecordInput's but metadata

    def owner(self, name: str) -> str | None:
        if name in self.types:
            return f"the built-in type {name}"
        if name in self.query_fields:
            return f"the built-in field Query.{name}"
        if name in self.mutation_fields:
            return f"the built-in field Mutation.{name}"
        return None


def check_names(
    new: CollectionInfo, others: Sequence[CollectionInfo], *, builtin: GenericNames
) -> None:
    """``InvalidInput`` naming the first collision of ``new``'s generated names."""
    problems = list(_collisions(new, others, builtin=builtin))
    if problems:
        raise InvalidInput(
            f"collection {new.name!r} cannot be created: {problems[0]}",
            extensions={"collisions": problems},
        )


def _collisions(
    new: CollectionInfo, others: Sequence[CollectionInfo], *, builtin: GenericNames
) -> Iterable[str]:
    mine = generated(new.name)
    for name, kind in mine.items():
        if owner := builtin.owner(name):
            yield f"its GraphQL {kind} {name} would collide with {owner}"
    for other in others:
        for name in sorted(mine.keys() & generated(other.name).keys()):
            yield (
                f"its GraphQL {mine[name]} {name} would collide with the one of collection "
                f"{other.name!r}"
            )
    for field in new.fields:
        if field.name in builtin.record_fields:
            yield (
                f"its field {field.name!r} would collide with the built-in field "
                f"{type_name(new.name, 'Record')}.{field.name}"
            )
