"""Client tests: a real vectorql server process, and the tools the clients need.

The server is ``python -m graph.cli serve`` (uvicorn, as users run it) on a free loopback port with
Milvus Lite and SQLite in a temporary directory, shared by every test in this folder. Each test
makes its own collection names.

A missing tool (Chromium, Node.js and npm, the codegen environment) skips its tests with the reason,
or fails them when ``VECTORQL_TEST_REQUIRE_BACKENDS=1`` (CI).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.conftest import REQUIRE_BACKENDS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OPERATIONS = EXAMPLES / "operations"
ARTIFACTS = ROOT / "test-artifacts"

START_TIMEOUT = 60.0
SERVE = (sys.executable, "-m", "graph.cli", "serve")


def tool_missing(what: str, reason: str, *, hint: str) -> NoReturn:
    """Skip (on a developer's machine) or fail (in CI) when a client tool is not there."""
    message = f"{what} is not available ({reason})"
    if REQUIRE_BACKENDS:
        pytest.fail(f"{message}; VECTORQL_TEST_REQUIRE_BACKENDS=1 requires it", pytrace=False)
    pytest.skip(f"{message}; {hint}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class LiveServer:
    """A running ``vectorql serve`` and a small synchronous GraphQL client for setting up data."""

    url: str
    log: Path

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    def ok(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        response = httpx.post(
            self.graphql, json={"query": query, "variables": variables or {}}, timeout=30
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert not body.get("errors"), body["errors"]
        return body["data"]

    def seed(self, collection: str) -> None:
        """A 4-d COSINE collection (category STRING, year INT) with four records."""
        self.ok(
            "mutation ($i: CreateCollectionInput!) { createCollection(input: $i) { name } }",
            {
                "i": {
                    "name": collection,
                    "dimension": 4,
                    "fields": [
                        {"name": "category", "type": "STRING"},
                        {"name": "year", "type": "INT"},
                    ],
                }
            },
        )
        records = [
            ("a1", [0.1, 0.2, 0.3, 0.4], "news", 2024, "fresh news"),
            ("a2", [0.1, 0.2, 0.3, 0.5], "news", 2018, "old news"),
            ("a3", [0.2, 0.2, 0.3, 0.4], "science", 2023, "a discovery"),
            ("a4", [0.4, 0.3, 0.2, 0.1], "news", 2025, "far away"),
        ]
        written = self.ok(
            """mutation ($c: String!, $r: [RecordInput!]!) {
                 upsertRecords(collection: $c, records: $r) { upserted }
               }""",
            {
                "c": collection,
                "r": [
                    {"id": i, "vector": v, "metadata": {"category": c, "year": y}, "text": t}
                    for i, v, c, y, t in records
                ],
            },
        )
        assert written["upsertRecords"]["upserted"] == len(records)


def _server_env(data: Path) -> dict[str, str]:
    # Nothing from the developer's VECTORQL_* settings leaks into the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
    env.update(
        VECTORQL_MILVUS_URI=str(data / "milvus.db"),
        VECTORQL_DATABASE_URL=f"sqlite+aiosqlite:///{data / 'vectorql.db'}",
        VECTORQL_AUTH="off",
        # The example page opened as a file sends `Origin: null`.
        VECTORQL_CORS_ORIGINS='["null"]',
        VECTORQL_LOG_LEVEL="WARNING",
        VECTORQL_RECONCILE_INTERVAL="0",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``vectorql serve --examples`` on 127.0.0.1, run from a temporary directory (no .env)."""
    data = tmp_path_factory.mktemp("live-server")
    port = free_port()
    log = data / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVE, "--host", "127.0.0.1", "--port", str(port), "--examples"],
            cwd=data,
            env=_server_env(data),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = LiveServer(url=f"http://127.0.0.1:{port}", log=log)
    try:
        _wait_ready(server, process)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)


def _wait_ready(server: LiveServer, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    last = "no answer yet"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(
                f"vectorql serve exited with {process.returncode}:\n{server.log.read_text()}",
                pytrace=False,
            )
        try:
            response = httpx.get(f"{server.url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text}"
        except httpx.TransportError as e:
            last = repr(e)
        time.sleep(0.2)
    pytest.fail(
        f"vectorql serve not ready in {START_TIMEOUT:.0f} s ({last}):\n{server.log.read_text()}",
        pytrace=False,
    )


@pytest.fixture
def collection() -> str:
    """A fresh collection name for one test."""
    return f"c_{uuid.uuid4().hex[:12]}"
