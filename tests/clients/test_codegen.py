"""TypeScript client codegen: GraphQL Code Generator over the committed schema and the example
operations, ``tsc`` compiles the typed client, and the compiled demo runs against a live server.

``npm ci`` fills ``examples/typescript/node_modules`` (gitignored) and is skipped while
package-lock.json is unchanged. Node.js and npm missing: skip, or fail under
``VECTORQL_TEST_REQUIRE_BACKENDS=1``.
"""

from __future__ import annotations

import json
import shutil
from functools import partial
from pathlib import Path

import pytest

from tests.clients.conftest import EXAMPLES, LiveServer, explain, npm_installed, run

TYPESCRIPT = EXAMPLES / "typescript"
GENERATED = TYPESCRIPT / "src" / "generated"

OPERATION_TYPES = (
    "CreateCollectionMutation",
    "CreateCollectionMutationVariables",
    "UpsertRecordsMutation",
    "UpsertRecordsMutationVariables",
    "SearchQuery",
    "SearchQueryVariables",
    "RecordsPageQuery",
    "RecordsPageQueryVariables",
)


_run = partial(run, cwd=TYPESCRIPT)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """``npm ci`` once per lockfile change; the install is cached in examples/typescript."""
    return npm_installed(TYPESCRIPT)


@pytest.fixture(scope="module")
def generated(node_modules: Path) -> Path:
    shutil.rmtree(GENERATED, ignore_errors=True)
    result = _run([str(node_modules / ".bin" / "graphql-codegen"), "--config", "codegen.ts"])
    assert result.returncode == 0, explain(result)
    return GENERATED


def test_codegen_generates_the_operation_and_scalar_types(generated: Path) -> None:
    operations = (generated / "operations.ts").read_text()
    for name in OPERATION_TYPES:
        assert f"export type {name} =" in operations, name
    for document in ("CreateCollection", "UpsertRecords", "Search", "RecordsPage"):
        assert f"export const {document}Document =" in operations, document
    assert "vector: number[] | string;" in operations  # SearchQueryVariables: a Vector input

    schema = (generated / "schema.ts").read_text()
    assert "Vector: { input: number[] | string; output: number[]; }" in schema
    assert "DateTime: { input: string; output: string; }" in schema
    assert "JSON: { input: import('../json.js').JSONValue;" in schema
    assert "export type Metric =\n  | 'COSINE'" in schema  # enums as string unions, no runtime


def test_typed_client_compiles_with_tsc(generated: Path, node_modules: Path) -> None:
    result = _run([str(node_modules / ".bin" / "tsc"), "--noEmit", "-p", "tsconfig.json"])
    assert result.returncode == 0, explain(result)


def test_compiled_demo_runs_against_a_live_server(
    generated: Path, node_modules: Path, live_server: LiveServer, collection: str
) -> None:
    built = _run([str(node_modules / ".bin" / "tsc"), "-p", "tsconfig.json"])
    assert built.returncode == 0, explain(built)
    node = shutil.which("node")
    assert node is not None
    result = _run([node, "dist/demo.js", live_server.graphql, collection], timeout=60)
    assert result.returncode == 0, explain(result)
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["upserted"] == 3
    assert [hit["id"] for hit in summary["hits"]] == ["a1"]  # news from 2020 on
    assert summary["hits"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert summary["hits"][0]["text"] == "fresh news"
    assert summary["records"] == 3  # paged two at a time through the keyset cursor
