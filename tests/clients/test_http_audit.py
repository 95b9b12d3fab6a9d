"""The GraphQL-over-HTTP specification audit (npm ``graphql-http``, ``auditServer``) against a
live ``vectorql serve``: every audit, MUST, SHOULD and MAY alike, answers ok.

``npm ci`` fills ``tests/clients/http-audit/node_modules`` (gitignored) and is skipped while
package-lock.json is unchanged. Node.js and npm missing: skip, or fail under
``VECTORQL_TEST_REQUIRE_BACKENDS=1``.
"""

from __future__ import annotations

import shutil
from functools import partial
from pathlib import Path

import pytest

from tests.clients.conftest import LiveServer, explain, npm_installed, run

AUDIT = Path(__file__).resolve().parent / "http-audit"
AUDIT_COUNT = 61  # graphql-http 1.23.1; a new pin may change it


_run = partial(run, cwd=AUDIT)


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, once ``npm ci`` has installed the audit (once per lockfile change)."""
    npm_installed(AUDIT)
    return str(shutil.which("node"))


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
    assert summary, explain(result, tail=8000)
    failures = {s: names for s, names in statuses.items() if s != "ok"}
    assert not failures, explain(result, tail=8000)
    assert len(statuses.get("ok", [])) == AUDIT_COUNT, explain(result, tail=8000)
    assert result.returncode == 0, explain(result, tail=8000)
