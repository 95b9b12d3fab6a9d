"""Typed collections in a TypeScript client: GraphQL Code Generator reads a live server's schema
(with the collection "books"' own types) and examples/typescript/typed/operations; tsc compiles
the typed example and rejects a wrong field name and a wrongly typed filter value."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import partial

import pytest

from tests.clients.conftest import EXAMPLES, LiveServer, explain, npm_installed, run

TYPESCRIPT = EXAMPLES / "typescript"
TYPED = TYPESCRIPT / "typed"
_run = partial(run, cwd=TYPESCRIPT)

WRONG = """import type { TypedBooksQuery, TypedBooksQueryVariables } from "./generated/books.js";

export const wrongValue: TypedBooksQueryVariables = {
  vector: [1, 0, 0, 0],
  where: { year: { _gte: "1950" } },
};

export function wrongField(data: TypedBooksQuery): unknown {
  return data.books.records.edges.map((edge) => edge.node.titel);
}
"""


@pytest.fixture
def books(live_server: LiveServer) -> Iterator[str]:
    """The collection the typed operations name, on the live server, dropped after."""
    live_server.ok(
        """mutation { createCollection(input: {name: "books", dimension: 4, fields: [
             {name: "title", type: STRING, required: true}, {name: "year", type: INT},
             {name: "tags", type: STRING_LIST}]}) { name } }"""
    )
    yield "books"
    live_server.ok('mutation { dropCollection(name: "books") }')


def test_tsc_checks_typed_operations_against_the_collection(
    books: str, live_server: LiveServer
) -> None:
    node_modules = npm_installed(TYPESCRIPT)
    shutil.rmtree(TYPED / "generated", ignore_errors=True)
    generated = _run(
        [str(node_modules / ".bin" / "graphql-codegen"), "--config", "typed/codegen.ts"],
        env={"VECTORQL_URL": live_server.graphql},
    )
    assert generated.returncode == 0, explain(generated)
    types = (TYPED / "generated" / "books.ts").read_text()
    assert "export type BooksFilter = {" in types
    assert "year?: IntComparison | null | undefined;" in types

    tsc = [str(node_modules / ".bin" / "tsc"), "-p", "typed/tsconfig.json"]
    compiled = _run(tsc)
    assert compiled.returncode == 0, explain(compiled)

    wrong = TYPED / "wrong.ts"
    wrong.write_text(WRONG)
    try:
        refused = _run(tsc)
    finally:
        wrong.unlink()
    assert refused.returncode != 0
    assert "wrong.ts(5,20): error TS2322: Type 'string' is not assignable to type 'number'" in (
        refused.stdout
    ), explain(refused)
    assert "Property 'titel' does not exist" in refused.stdout, explain(refused)
