"""``vectorql import`` while ``vectorql serve`` runs on the default embedded stores (a Milvus Lite
file and SQLite): the server holds the file, so the command imports through the server's API, with
the same summary and line-numbered errors; with the server stopped the same command opens the
store itself.

Real processes throughout: the server from ``tests.servers.serve_api`` (API keys on, an admin
key), the command as ``python -m graph.cli import`` with the server's environment.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from store import Store, StoreConfig
from tests.integration.test_import import (
    expected_good_ids,
    line,
    mixed_lines,
    release_milvus_lite,
    vec,
    write_lines,
)
from tests.servers import ApiServer, serve_api

NAME = "docs"
VIA_API = "importing through its API"
CREATE = """mutation($input: CreateCollectionInput!) { createCollection(input: $input) { name } }"""


@dataclass(frozen=True)
class Running:
    server: ApiServer
    data: Path

    @property
    def env(self) -> dict[str, str]:
        """The server's settings, as a user's shell would have them."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
        env["VECTORQL_MILVUS_URI"] = str(self.data / "milvus.db")
        env["VECTORQL_DATABASE_URL"] = f"sqlite+aiosqlite:///{self.data / 'vectorql.db'}"
        env["VECTORQL_PORT"] = str(self.server.port)
        env["VECTORQL_API_KEY"] = self.server.key
        return env


def graphql(server: ApiServer, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(
        f"{server.url}/graphql",
        json={"query": query, "variables": variables},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=60,
    )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body


def create_collection(server: ApiServer, name: str) -> None:
    fields = [{"name": "kind", "type": "STRING"}, {"name": "n", "type": "INT"}]
    graphql(server, CREATE, input={"name": name, "dimension": 8, "fields": fields})


def ids_in(server: ApiServer, collection: str) -> set[str]:
    query = "query($c: String!) { records(collection: $c, first: 100) { edges { node { id } } } }"
    edges = graphql(server, query, c=collection)["data"]["records"]["edges"]
    return {edge["node"]["id"] for edge in edges}


def nearest(server: ApiServer, collection: str, vector: list[float]) -> str:
    query = """query($c: String!, $v: Vector!) {
      search(collection: $c, vector: $v, topK: 1) { hits { id } }
    }"""
    hits = graphql(server, query, c=collection, v=vector)["data"]["search"]["hits"]
    return str(hits[0]["id"])


def run_import(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graph.cli", "import", *args],
        env=env,
        cwd=cwd,  # no developer .env is read
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    data = tmp_path_factory.mktemp("serving")
    with serve_api(data, admin_key=True, auth="apikey", reconcile_interval=0) as server:
        yield Running(server, data)


def test_import_while_serving_goes_through_the_server_and_reports_bad_lines(
    running: Running, tmp_path: Path
) -> None:
    create_collection(running.server, "mixed")
    lines = mixed_lines()
    path = write_lines(tmp_path / "in.jsonl.gz", lines)

    done = run_import(running.env, tmp_path, str(path), "-c", "mixed", "--batch-size", "3")

    assert done.returncode == 1, done.stderr  # bad lines
    assert VIA_API in done.stderr
    assert f"http://127.0.0.1:{running.server.port}/graphql" in done.stderr
    assert "5 records written from 10 lines" in done.stdout
    assert "4 bad lines" in done.stdout
    assert "line 3: invalid JSON" in done.stdout
    assert "line 5 (id 'r5'): vector dimension is 3, expected 8" in done.stdout
    assert "line 6 (id 'r6'): metadata.n (INT): expected an integer, got a string" in done.stdout
    assert "line 9: not a JSON object (got a list)" in done.stdout
    # Searchable through the server at once.
    assert ids_in(running.server, "mixed") == expected_good_ids(lines)
    assert nearest(running.server, "mixed", vec(10)) == "r10"

    again = run_import(running.env, tmp_path, str(path), "-c", "mixed")
    assert "5 records written from 10 lines" in again.stdout
    assert ids_in(running.server, "mixed") == expected_good_ids(lines)  # upserts, no copies


def test_strict_through_the_server_stops_at_the_first_bad_line(
    running: Running, tmp_path: Path
) -> None:
    create_collection(running.server, "strict")
    lines = [
        line(id="s1", vector=vec(1)),
        line(id="s2", vector=vec(2), metadata={"kind": "b"}),
        line(id="s3", vector=vec(3), metadata={"n": "three"}),  # 3: refused by the server
        line(id="s4", vector=vec(4)),
        line(id="s5", vector=[1.0]),
    ]
    path = write_lines(tmp_path / "strict.jsonl", lines)
    url = f"{running.server.url}/graphql"

    done = run_import(running.env, tmp_path, str(path), "-c", "strict", "--strict", "--url", url)

    assert done.returncode == 1, done.stderr
    assert VIA_API not in done.stderr  # --url: nothing to detect
    assert "stopped at line 3 (--strict)" in done.stdout
    assert "line 3 (id 's3'): metadata.n (INT): expected an integer, got a string" in done.stdout
    assert "2 records written" in done.stdout
    assert ids_in(running.server, "strict") == {"s1", "s2"}


def test_import_through_a_server_with_keys_needs_a_key(running: Running, tmp_path: Path) -> None:
    create_collection(running.server, "keyed")
    path = write_lines(tmp_path / "k.jsonl", [line(id="k1", vector=vec(1))])
    env = {k: v for k, v in running.env.items() if k != "VECTORQL_API_KEY"}

    refused = run_import(env, tmp_path, str(path), "-c", "keyed")
    assert refused.returncode == 1
    assert "refused the import" in refused.stderr
    assert "--api-key" in refused.stderr

    missing = run_import(running.env, tmp_path, str(path), "-c", "nope")
    assert missing.returncode == 1
    assert "collection 'nope' does not exist" in missing.stderr

    done = run_import(env, tmp_path, str(path), "-c", "keyed", "--api-key", running.server.key)
    assert done.returncode == 0, done.stderr
    assert ids_in(running.server, "keyed") == {"k1"}


def test_the_same_command_imports_directly_once_the_server_stops(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    first = write_lines(tmp_path / "a.jsonl", [line(id="a1", vector=vec(1))])
    second = write_lines(tmp_path / "b.jsonl", [line(id="b1", vector=vec(2)), "[1]"])
    with serve_api(data, admin_key=True, auth="apikey", reconcile_interval=0) as server:
        running = Running(server, data)
        create_collection(server, NAME)
        while_serving = run_import(running.env, tmp_path, str(first), "-c", NAME)
        assert while_serving.returncode == 0, while_serving.stderr
        assert VIA_API in while_serving.stderr
        env = running.env

    stopped = run_import(env, tmp_path, str(second), "-c", NAME)

    assert VIA_API not in stopped.stderr
    assert stopped.returncode == 1, stopped.stderr  # line 2 is bad
    assert "1 records written from 2 lines" in stopped.stdout
    assert "line 2: not a JSON object (got a list)" in stopped.stdout

    async def stored_ids() -> set[str]:
        store = await Store.open(
            StoreConfig(
                milvus_uri=env["VECTORQL_MILVUS_URI"], database_url=env["VECTORQL_DATABASE_URL"]
            )
        )
        try:
            await store.load_collections()
            return await store.vectors.all_ids(f"vq_{NAME}")
        finally:
            await store.close()
            release_milvus_lite(env["VECTORQL_MILVUS_URI"])

    assert asyncio.run(stored_ids()) == {"a1", "b1"}
