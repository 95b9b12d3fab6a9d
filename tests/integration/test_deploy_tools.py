"""The real tools accept the production-like stack's files: a compose CLI (``docker compose`` or
``docker-compose``) and ``promtool``. They run as subprocesses, so they live here and not with the
tool-free checks of tests/unit/test_deploy.py. A missing tool skips, or fails under
``VECTORQL_TEST_REQUIRE_BACKENDS=1`` (CI: ``make test`` installs them).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REQUIRE_BACKENDS
from tests.deploy import COMPOSE_FILE, DEPLOY, OPERATOR_ENV, ROOT


def compose_clis() -> list[list[str]]:
    clis = []
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if plugin.returncode == 0:
            clis.append(["docker", "compose"])
    if shutil.which("docker-compose"):
        clis.append(["docker-compose"])
    return clis


def tool_missing(what: str) -> None:
    """Skip, or fail under VECTORQL_TEST_REQUIRE_BACKENDS=1 (CI): ``make test`` installs it."""
    message = f"{what} is not installed (make test installs it from Debian's packages as root)"
    if REQUIRE_BACKENDS:
        pytest.fail(f"{message}; VECTORQL_TEST_REQUIRE_BACKENDS=1 requires it", pytrace=False)
    pytest.skip(message)


@pytest.mark.parametrize(
    "cli", compose_clis() or [None], ids=lambda cli: " ".join(cli) if cli else "none"
)
def test_the_compose_cli_accepts_the_file(cli: list[str] | None) -> None:
    if cli is None:
        tool_missing("a docker compose CLI (docker-compose or the docker compose plugin)")
        return
    env = {**os.environ, **OPERATOR_ENV}
    result = subprocess.run(
        [*cli, "--file", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["check", "config", "prometheus.yml"],
        ["check", "rules", "prometheus-rules.yml"],
        ["test", "rules", "prometheus-rules.test.yml"],
    ],
    ids=" ".join,
)
def test_promtool_accepts_the_prometheus_files(args: list[str], tmp_path: Path) -> None:
    if shutil.which("promtool") is None:
        tool_missing("promtool (Debian's prometheus package)")
    # promtool checks that the token file exists: the container writes it at start, so check a
    # copy of the directory whose config points at a token file that exists here.
    directory = tmp_path / "deploy"
    shutil.copytree(DEPLOY, directory)
    config = directory / "prometheus.yml"
    token = directory / "vectorql-metrics-token"
    token.write_text("test-metrics-token")
    config.write_text(config.read_text().replace("/prometheus/vectorql-metrics-token", str(token)))
    result = subprocess.run(
        ["promtool", *args], cwd=directory, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
