"""The first-session examples: one source for GraphiQL's tabs and the README's first session.

``graph/static/first-session.toml`` holds named operations with their variables (as JSON text, so
that GraphiQL's variables editor and the README show the same text). The GraphiQL page preloads
them as tabs; the README's "A first session in GraphiQL" section shows each as a ``graphql`` block
followed by its ``json`` variables block, and a unit test fails when the two differ.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import graphql

__all__ = ["Example", "first_session", "source_path"]


@dataclass(frozen=True, slots=True)
class Example:
    """One named operation and its variables (JSON text, or ``None`` when it takes none)."""

    name: str
    query: str
    variables: str | None = None


def source_path() -> Path:
    return Path(__file__).resolve().parents[1] / "static" / "first-session.toml"


def _operation_name(query: str) -> str:
    document = graphql.parse(query, no_location=True)
    names = [
        d.name.value
        for d in document.definitions
        if isinstance(d, graphql.OperationDefinitionNode) and d.name is not None
    ]
    if len(names) != 1 or len(document.definitions) != 1:
        raise ValueError(f"an example must be one named operation: {query!r}")
    return names[0]


def _example(entry: dict[str, object]) -> Example:
    if unknown := set(entry) - {"query", "variables"}:
        raise ValueError(f"an example has only a query and variables, not {sorted(unknown)}")
    query = entry.get("query")
    variables = entry.get("variables")
    if not isinstance(query, str) or not (variables is None or isinstance(variables, str)):
        raise ValueError(f"an example needs a query string and variables as JSON text: {entry!r}")
    if variables is not None and not isinstance(json.loads(variables), dict):
        raise ValueError(f"variables must be a JSON object: {variables!r}")
    return Example(name=_operation_name(query), query=query, variables=variables)


@cache
def first_session() -> tuple[Example, ...]:
    """The examples in order (read once: the file ships with the package)."""
    with source_path().open("rb") as fh:
        data = tomllib.load(fh)
    if unknown := set(data) - {"example"}:
        raise ValueError(f"{source_path()}: unexpected keys {sorted(unknown)}")
    entries = data.get("example", [])
    return tuple(_example(entry) for entry in entries)
