"""Typed collections in a Python client: ariadne-codegen reads the live schema (``vectorql
schema --live``) of a server with the collection "books", the generated client runs
examples/python/typed/books.py against it, and mypy --strict rejects a wrongly typed filter value
and a field the collection does not have."""

from __future__ import annotations

import ast
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.clients.conftest import EXAMPLES, LiveServer, explain, run
from tests.clients.test_python_codegen import _codegen_environment
from tests.servers import VECTORQL

TYPED = EXAMPLES / "python" / "typed"
MYPY_CONFIG = """\
[mypy]
strict = True
plugins = pydantic.mypy

[pydantic-mypy]
init_typed = True
init_forbid_extra = True

[mypy-books_client.*]
ignore_errors = True
"""
WRONG = """\
from books_client import BooksFilter, BooksInput, IntComparison

where = BooksFilter(year=IntComparison(gte="1950"))
book = BooksInput(id="x", vector=[1, 0, 0, 0], titel="Dune")
"""


@pytest.fixture
def books(live_server: LiveServer) -> Iterator[str]:
    live_server.ok(
        """mutation { createCollection(input: {name: "books", dimension: 4, fields: [
             {name: "title", type: STRING, required: true}, {name: "year", type: INT},
             {name: "tags", type: STRING_LIST}]}) { name } }"""
    )
    yield "books"
    live_server.ok('mutation { dropCollection(name: "books") }')


def test_python_client_typed_by_the_live_schema(
    books: str, live_server: LiveServer, tmp_path: Path
) -> None:
    codegen = _codegen_environment()
    example = tmp_path / "python" / "typed"
    shutil.copytree(TYPED, example)
    shutil.copy(EXAMPLES / "python" / "scalars.py", tmp_path / "python" / "scalars.py")
    sdl = run([*VECTORQL, "schema", "--live", "--url", live_server.graphql], cwd=example)
    assert sdl.returncode == 0, explain(sdl)
    (example / "schema.graphql").write_text(sdl.stdout)
    generated = run([str(codegen)], cwd=example, timeout=120)
    assert generated.returncode == 0, explain(generated)

    demo = run([str(codegen.parent / "python"), "books.py", live_server.graphql], cwd=example)
    assert demo.returncode == 0, explain(demo)
    assert ast.literal_eval(demo.stdout.strip().splitlines()[-1]) == ["Dune", "Ubik"]

    config = example / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    mypy = [sys.executable, "-m", "mypy", "--config-file", str(config)]
    checked = run([*mypy, "books.py"], cwd=example, timeout=300)
    assert checked.returncode == 0, explain(checked)
    (example / "wrong.py").write_text(WRONG)
    refused = run([*mypy, "wrong.py"], cwd=example, timeout=300)
    assert refused.returncode != 0
    assert 'Argument "gte" to "IntComparison" has incompatible type "str"' in refused.stdout, (
        explain(refused)
    )
    assert 'Unexpected keyword argument "titel" for "BooksInput"' in refused.stdout
