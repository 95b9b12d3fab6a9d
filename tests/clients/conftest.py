"""Client tests: a real vectorql server process, and the tools the clients need.

The server is ``python -m graph.cli serve`` (uvicorn, as users run it; ``tests.servers.serve_api``)
on a free loopback port with Milvus Lite and SQLite in a temporary directory, shared by every test
in this folder. Each test makes its own collection names.

A missing tool (Chromium, Node.js and npm, the codegen environment) skips its tests with the reason,
or fails them when ``VECTORQL_TEST_REQUIRE_BACKENDS=1`` (CI).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.conftest import REQUIRE_BACKENDS
from tests.servers import serve_api

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
OPERATIONS = EXAMPLES / "operations"
ARTIFACTS = ROOT / "test-artifacts"

START_TIMEOUT = 60.0


def tool_missing(what: str, reason: str, *, hint: str) -> NoReturn:
    """Skip (on a developer's machine) or fail (in CI) when a client tool is not there."""
    message = f"{what} is not available ({reason})"
    if REQUIRE_BACKENDS:
        pytest.fail(f"{message}; VECTORQL_TEST_REQUIRE_BACKENDS=1 requires it", pytrace=False)
    pytest.skip(f"{message}; {hint}")


def run(
    args: Sequence[str],
    *,
    cwd: Path,
    timeout: float = 300,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """A client tool run to completion in ``cwd``, its output captured (``NO_COLOR=1``; ``env``
    adds variables)."""
    return subprocess.run(
        list(args),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        check=False,
    )


def explain(result: subprocess.CompletedProcess[str], *, tail: int = 4000) -> str:
    """A finished run for an assertion message: its exit code and the end of its output."""
    return f"exit {result.returncode}\n{result.stdout[-tail:]}\n{result.stderr[-4000:]}"


def npm_installed(project: Path) -> Path:
    """``project``'s node_modules, filled by ``npm ci`` when package.json or package-lock.json
    changed since the last install (a stamp file in node_modules, which is gitignored). Node.js
    or npm missing, or ``npm ci`` failing: skip, or fail under VECTORQL_TEST_REQUIRE_BACKENDS=1."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        tool_missing(
            "Node.js",
            "node or npm is not on PATH",
            hint="install Node.js 20 or newer (Debian: apt-get install nodejs npm)",
        )
    node_modules = project / "node_modules"
    stamp = node_modules / ".vectorql-installed"
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((project / name).read_bytes())
    if stamp.is_file() and stamp.read_text() == digest.hexdigest():
        return node_modules
    result = run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=project, timeout=600
    )
    if result.returncode != 0:
        tool_missing(
            f"the npm packages of {project.relative_to(ROOT)}",
            f"npm ci failed: {explain(result)}",
            hint="npm ci needs the npm registry",
        )
    stamp.write_text(digest.hexdigest())
    return node_modules


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


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``vectorql serve --examples`` on 127.0.0.1, run from a temporary directory (no .env)."""
    with serve_api(
        tmp_path_factory.mktemp("live-server"),
        args=("--examples",),
        timeout=START_TIMEOUT,
        auth="off",
        cors_origins='["null"]',  # the example page opened as a file sends `Origin: null`
        reconcile_interval=0,
    ) as server:
        yield LiveServer(url=server.url, log=server.log)


@pytest.fixture
def collection() -> str:
    """A fresh collection name for one test."""
    return f"c_{uuid.uuid4().hex[:12]}"
