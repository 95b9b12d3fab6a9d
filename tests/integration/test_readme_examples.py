"""Every GraphQL example in the README runs as written, in README order, against the real app.

The README's conventions (read by ``tests/readme.py``):

- A ```graphql block is an executable document and is run; schema text (SDL) is fenced as
  ```graphql-sdl and is not (a ```graphql block holding type definitions fails this test).
- The ```json block right after a ```graphql block (only blank lines between) is its variables.
- A block with several operations runs each of them, in document order, by ``operationName``
  (so they must be named), with the block's variables.
- A comment line ``# expect: CODE`` inside a block marks an example of an error: every operation
  in it must fail with ``extensions.code`` CODE. Every other operation must answer without errors.

The blocks build on each other (the first session creates "articles" and the API section "docs",
then upserts, searches and deletes), so they run in order against one fresh app: Milvus Lite in
``tmp_path`` with SQLite, and with PostgreSQL (which skips where PostgreSQL is not reachable).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import graphql
import pytest

from tests.conftest import Api, fresh_database, make_settings, running_api
from tests.readme import README, GraphQLExample, graphql_examples


@pytest.fixture(params=["sqlite", "postgres"])
async def readme_api(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Api]:
    async with (
        fresh_database(request.param, tmp_path) as database_url,
        running_api(
            make_settings(milvus_uri=str(tmp_path / "milvus.db"), database_url=database_url)
        ) as api,
    ):
        yield api


def _operations(example: GraphQLExample) -> list[str | None]:
    """The operation names to run, in order (``None``: the block's single operation)."""
    try:
        document = graphql.parse(example.query)
    except graphql.GraphQLError as e:
        raise AssertionError(f"README line {example.line}: {e}") from e
    sdl = [d for d in document.definitions if not isinstance(d, graphql.ExecutableDefinitionNode)]
    assert not sdl, (
        f"README line {example.line}: a ```graphql block holds schema definitions; fence SDL as "
        "```graphql-sdl"
    )
    operations = [d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    assert operations, f"README line {example.line}: no operation in a ```graphql block"
    if len(operations) == 1:
        return [None]
    unnamed = [d for d in operations if d.name is None]
    assert not unnamed, f"README line {example.line}: name every operation of a multi-op block"
    return [d.name.value for d in operations if d.name is not None]


def test_readme_has_graphql_examples() -> None:
    examples = graphql_examples(README.read_text())
    assert len(examples) >= 8, examples  # the first session (7) and the API sections
    assert any(e.expect for e in examples), "no example of an error is checked"
    assert any(e.variables_text for e in examples)


async def test_every_readme_graphql_block_runs_in_order(readme_api: Api) -> None:
    ran: list[str] = []
    for example in graphql_examples(README.read_text()):
        for operation in _operations(example):
            payload: dict[str, object] = {"query": example.query, "variables": example.variables}
            if operation is not None:
                payload["operationName"] = operation
            response = await readme_api.client.post("/graphql", json=payload)
            body = response.json()
            where = f"README line {example.line} ({operation or 'the block'})"
            errors = body.get("errors")
            if example.expect is None:
                assert response.status_code == 200, (where, response.text)
                assert not errors, (where, errors)
                assert body["data"], (where, body)
            else:
                assert errors, f"{where}: expected {example.expect}, got {body}"
                assert errors[0]["extensions"]["code"] == example.expect, (where, errors)
            ran.append(where)
    assert ran
