"""The GraphQL-over-HTTP specification audit (npm ``graphql-http``, ``auditServer``) against a
live ``vectorql serve``: every audit, MUST, SHOULD and MAY alike, answers ok.

``npm ci`` fills ``tests/clients/http-audit/node_modules`` (gitignored) and is skipped while
package-lock.json is unchanged. Node.js and npm missing: skip, or fail under
``VECTORQL_TEST_REQUIRE_BACKENDS=1``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.clients.conftest import LiveServer, tool_missing

AUDIT = Path(__file__).resolve().parent / "http-audit"
NODE_MODULES = AUDIT / "node_modules"
STAMP = NODE_MODULES / ".vectorql-installed"
AUDIT_COUNT = 61  # graphql-http 1.23.1; a new pin may change it


def _run(args: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=AUDIT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n{result.stdout[-8000:]}\n{result.stderr[-4000:]}"


def _lock_digest() -> str:
    digest = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        digest.update((AUDIT / name).read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, once ``npm ci`` has installed the audit (once per lockfile change)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        tool_missing(
            "Node.js",
            "node or npm is not on PATH",
            hint="install Node.js 20 or newer (Debian: apt-get install nodejs npm)",
        )
    digest = _lock_digest()
    if not (STAMP.is_file() and STAMP.read_text() == digest):
        result = _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=600)
        if result.returncode != 0:
            tool_missing(
                "the npm packages of tests/clients/http-audit",
                f"npm ci failed: {_explain(result)}",
                hint="npm ci needs the npm registry",
            )
        STAMP.write_text(digest)
    return node


def test_the_graphql_over_http_audit_passes_with_no_warning(
    node: str, live_server: LiveServer
) -> None:
    result = _run([node, "audit.mjs", live_server.graphql], timeout=120)
    statuses: dict[str, list[str]] = {}
    summary = ""
    for line in result.stdout.splitlines():
        status, _, rest = line.partition("\t")
        if status == "summary":
            summary = rest
        elif status in ("ok", "notice", "warn", "error"):
            statuses.setdefault(status, []).append(rest)
    assert summary, _explain(result)
    failures = {s: names for s, names in statuses.items() if s != "ok"}
    assert not failures, _explain(result)
    assert len(statuses.get("ok", [])) == AUDIT_COUNT, _explain(result)
    assert result.returncode == 0, _explain(result)
