"""Python client codegen: ariadne-codegen turns the committed schema and the example operations
into a typed async client (examples/python/pyproject.toml), which then runs against a live server.

ariadne-codegen needs graphql-core 3.2 and vectorql needs 3.3, so it runs from its own environment,
``examples/python/.venv`` (gitignored), built from requirements-codegen.txt on first use and rebuilt
when that file changes. The client is generated into a temporary directory at every run, so there
is no committed output to drift; the demo is type-checked against it with mypy --strict.
"""

from __future__ import annotations

import hashlib
import importlib
import shutil
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import ModuleType

import pytest

from tests.clients.conftest import (
    EXAMPLES,
    OPERATIONS,
    ROOT,
    LiveServer,
    explain,
    run,
    tool_missing,
)

PYTHON_EXAMPLE = EXAMPLES / "python"
REQUIREMENTS = PYTHON_EXAMPLE / "requirements-codegen.txt"
CODEGEN_ENV = PYTHON_EXAMPLE / ".venv"
STAMP = CODEGEN_ENV / ".vectorql-installed"
PACKAGE = "vectorql_client"

MYPY_CONFIG = f"""\
[mypy]
strict = True
plugins = pydantic.mypy
cache_dir = {ROOT / ".mypy_cache" / "client-examples"}

# Generated code is not held to --strict; what uses it is.
[mypy-{PACKAGE}.*]
ignore_errors = True
"""


def _codegen_environment() -> Path:
    """The ariadne-codegen executable, installing its environment when absent or outdated."""
    executable = CODEGEN_ENV / "bin" / "ariadne-codegen"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if executable.is_file() and STAMP.is_file() and STAMP.read_text() == digest:
        return executable
    pip = [str(CODEGEN_ENV / "bin" / "python"), "-m", "pip"]
    steps = (
        [sys.executable, "-m", "venv", "--clear", str(CODEGEN_ENV)],
        [*pip, "install", "--quiet", "--disable-pip-version-check", "-r", str(REQUIREMENTS)],
    )
    for step in steps:
        result = run(step, cwd=PYTHON_EXAMPLE, timeout=600)
        if result.returncode != 0:
            tool_missing(
                "ariadne-codegen",
                f"installing it failed: {explain(result)}",
                hint="its environment is installed from PyPI on first use",
            )
    STAMP.write_text(digest)
    return executable


@pytest.fixture(scope="module")
def example_copy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """examples/python with the committed config, run by ariadne-codegen in a copy of the tree.

    The copy keeps the config's relative paths (../../schema.graphql, ../operations) true, so the
    config is tested as committed; the generated package lands in the copy, not in the repo.
    """
    executable = _codegen_environment()
    root = tmp_path_factory.mktemp("ariadne")
    shutil.copy(ROOT / "schema.graphql", root / "schema.graphql")
    shutil.copytree(OPERATIONS, root / "examples" / "operations")
    example = root / "examples" / "python"
    example.mkdir()
    for name in ("pyproject.toml", "scalars.py", "demo.py"):
        shutil.copy(PYTHON_EXAMPLE / name, example / name)
    result = run([str(executable)], cwd=example, timeout=120)
    assert result.returncode == 0, explain(result)
    assert (example / PACKAGE / "client.py").is_file()
    sys.path.insert(0, str(example))
    try:
        yield example
    finally:
        sys.path.remove(str(example))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
        sys.modules.pop("demo", None)


@pytest.fixture(scope="module")
def client_module(example_copy: Path) -> ModuleType:
    return importlib.import_module(PACKAGE)


@pytest.fixture(scope="module")
def demo_module(example_copy: Path) -> ModuleType:
    return importlib.import_module("demo")


def test_scalars_are_mapped_in_the_generated_models(example_copy: Path) -> None:
    package = example_copy / PACKAGE
    inputs = (package / "input_types.py").read_text()
    assert "from .scalars import JSON, Vector" in inputs
    assert "vector: Optional[Vector] = None" in inputs  # optional: the server embeds text
    assert "metadata: Optional[JSON] = None" in inputs
    assert "updated_at: datetime" in (package / "search.py").read_text()
    assert "Vector: TypeAlias = list[float] | str" in (package / "scalars.py").read_text()
    client = (package / "client.py").read_text()
    for method in ("create_collection", "upsert_records", "search", "records_page"):
        assert f"async def {method}(" in client, method


async def test_generated_client_creates_upserts_and_searches_with_a_filter(
    client_module: ModuleType, demo_module: ModuleType, live_server: LiveServer, collection: str
) -> None:
    vq = client_module
    async with vq.VectorqlClient(url=live_server.graphql) as client:
        assert await demo_module.create_if_absent(client, collection) is True
        found = await demo_module.demo(client, collection)  # the second create is a CONFLICT
        assert [(f.id, f.text) for f in found] == [("a1", "fresh news")]  # a2 2019, a3 sport
        assert found[0].score == pytest.approx(1.0, abs=1e-5)

        # a2 was sent as base64 float32: the same vector, sent the same way, finds it first.
        result = await client.search(
            collection=collection,
            vector=demo_module.base64_vector([0.1, 0.2, 0.3, 0.5]),
            top_k=3,
            where=vq.Filter(field="category", eq="news"),
        )
        hits = result.search.hits
        assert [hit.id for hit in hits] == ["a2", "a1"]
        assert hits[0].score == pytest.approx(1.0, abs=1e-5)
        assert hits[0].record is not None
        assert hits[0].record.metadata == {"category": "news", "year": 2019}
        assert isinstance(hits[0].record.updated_at, datetime)
        assert result.search.took_ms >= 0

        page = await client.records_page(collection=collection, first=2)
        assert page.records.total_count == 3
        assert [edge.node.id for edge in page.records.edges] == ["a1", "a2"]
        assert page.records.page_info.has_next_page
        rest = await client.records_page(
            collection=collection, first=2, after=page.records.page_info.end_cursor
        )
        assert [edge.node.id for edge in rest.records.edges] == ["a3"]

        with pytest.raises(vq.GraphQLClientGraphQLMultiError) as caught:
            await client.search(collection=collection, vector=[0.1, 0.2], top_k=3)
        assert caught.value.errors[0].extensions["code"] == "BAD_USER_INPUT"


def test_demo_runs_as_documented_from_the_example_environment(
    example_copy: Path, live_server: LiveServer, collection: str
) -> None:
    """The README's command, ``.venv/bin/python demo.py URL``: requirements-codegen.txt is the
    environment the demo and its generated client need (httpx, pydantic), nothing else."""
    python = CODEGEN_ENV / "bin" / "python"
    result = run(
        [str(python), "demo.py", live_server.graphql, collection], cwd=example_copy, timeout=120
    )
    assert result.returncode == 0, explain(result)
    assert "a1" in result.stdout


def test_demo_type_checks_against_the_generated_client(example_copy: Path) -> None:
    config = example_copy / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    result = run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "demo.py"],
        cwd=example_copy,
        timeout=300,
    )
    assert result.returncode == 0, explain(result)
