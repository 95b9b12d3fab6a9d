"""Real Milvus backends started as child processes, for the test suite.

Two backends, one handle API (:class:`store.MilvusProcess`, the product's, which also runs the
managed default engine):

* :func:`start_milvus_standalone` -- Milvus 2.3.x standalone from the PyPI package ``milvus``
  (``store.MilvusStandalone``: its bundled Go binary, run directly so a test can SIGKILL it).
* :func:`start_milvus_lite_server` -- ``milvus-lite server`` (the gRPC front of Milvus Lite).

Every handle runs in a directory of its own, listens on free loopback ports (kept in
``<base_dir>/ports.json`` so :meth:`MilvusProcess.restart` comes back on the same ones with the same
data), and is killed when the test process exits. Example fixture::

    @pytest.fixture(scope="session")
    def milvus(tmp_path_factory):
        with start_milvus_standalone(tmp_path_factory.mktemp("milvus")) as server:
            yield server            # server.uri == "http://127.0.0.1:PORT"

Run ``python -m tests.servers`` for a smoke test of both with timings.

And vectorql itself as users run it: :func:`serve_api` starts ``vectorql serve`` on the embedded
stores of a directory (the one helper for every test that needs a real server process).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from store import (
    MilvusProcess,
    MilvusStandalone,
    ServerStartError,
    free_port,
    free_ports,
    port_is_free,
    quiet_pymilvus,
    rss_bytes_of_group,
    wait_until_collections_queryable,
    wait_until_ready,
)

__all__ = [
    "ApiServer",
    "MilvusLiteServer",
    "MilvusProcess",
    "MilvusStandalone",
    "ServerStartError",
    "api_env",
    "free_port",
    "free_ports",
    "milvus_lite_db_uri",
    "port_is_free",
    "quiet_pymilvus",
    "rss_bytes_of_group",
    "serve_api",
    "start_milvus_lite_server",
    "start_milvus_standalone",
    "wait_until_collections_queryable",
    "wait_until_ready",
]

LOOPBACK = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]

# Every server a test started, killed when the test process exits (if a test forgot to stop it);
# the servers also die with the thread that started them (die_with_parent).
_STARTED: list[MilvusProcess] = []


@atexit.register
def _kill_leftovers() -> None:
    for server in _STARTED:
        with contextlib.suppress(Exception):
            server.kill()


P = TypeVar("P", bound=MilvusProcess)


def _started(server: P) -> P:
    _STARTED.append(server)
    return server.start()


# --------------------------------------------------------------------------------------------
# Milvus 2.3 standalone (PyPI `milvus`): the product's own handle (store.MilvusStandalone)


def start_milvus_standalone(
    base_dir: Path | str,
    port: int | None = None,
    **kwargs: Any,
) -> MilvusStandalone:
    """Start Milvus 2.3 standalone in `base_dir` (free port unless `port`); wait until ready.
    The binary is unpacked into ``$VECTORQL_MILVUS_BIN_DIR`` when set (as the product does)."""
    explicit = os.environ.get("VECTORQL_MILVUS_BIN_DIR")
    kwargs.setdefault("bin_dir", Path(explicit) if explicit else None)
    kwargs.setdefault("die_with_parent", True)
    return _started(MilvusStandalone(base_dir, port, **kwargs))


# --------------------------------------------------------------------------------------------
# Milvus Lite gRPC server


class MilvusLiteServer(MilvusProcess):
    """``milvus-lite server --data-dir <base_dir>/data --host 127.0.0.1 --port P``.

    Stopped with SIGINT (its graceful path: drain for up to 5 s, close the DB); SIGTERM would end
    it without closing the DB.
    """

    kind = "milvus-lite-server"
    stop_signal = signal.SIGINT

    def __init__(
        self,
        base_dir: Path | str,
        port: int | None = None,
        *,
        ready_timeout: float = 60.0,
        stop_timeout: float = 10.0,
        max_workers: int = 10,
        die_with_parent: bool = False,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.max_workers = max_workers
        super().__init__(
            base_dir,
            port,
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
            die_with_parent=die_with_parent,
            extra_env=extra_env,
        )
        self.data_dir = self.base_dir / "data"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "milvus_lite",
            "server",
            "--data-dir",
            str(self.data_dir),
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--max-workers",
            str(self.max_workers),
        ]

    def environment(self) -> dict[str, str]:
        return {**super().environment(), "PYTHONUNBUFFERED": "1"}


def start_milvus_lite_server(
    base_dir: Path | str,
    port: int | None = None,
    **kwargs: Any,
) -> MilvusLiteServer:
    """Start ``milvus-lite server`` on `base_dir`/data (free port unless `port`); wait."""
    kwargs.setdefault("die_with_parent", True)
    return _started(MilvusLiteServer(base_dir, port, **kwargs))


def milvus_lite_db_uri(base_dir: Path | str, name: str = "milvus.db") -> str:
    """URI for in-process Milvus Lite (one process per file): a ``.db`` path in `base_dir`."""
    return str(Path(base_dir).resolve() / name)


# --------------------------------------------------------------------------------------------
# vectorql serve


VECTORQL = (sys.executable, "-m", "graph.cli")  # the CLI as users run it


@dataclass(frozen=True)
class ApiServer:
    """A running ``vectorql serve``: its URL, its admin key (when keys are on), its log."""

    url: str
    log: Path
    process: subprocess.Popen[bytes]
    env: Mapping[str, str]
    key: str = ""  # the admin key ("" unless admin_key)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    @property
    def graphql(self) -> str:
        return f"{self.url}/graphql"

    def rss(self) -> int:
        return rss_bytes_of_group(self.process.pid)


def api_env(data: Path, *, default_milvus: bool = False, **settings: Any) -> dict[str, str]:
    """The environment of a ``vectorql`` command on the embedded stores in ``data`` (a Milvus Lite
    file and SQLite), plus ``settings`` as ``VECTORQL_<NAME>`` variables. Nothing from the
    developer's own ``VECTORQL_*`` variables leaks in. ``default_milvus``: no Milvus URI at all,
    so the default (``local``, the managed engine in ``./data`` of the working directory)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
    if not default_milvus:
        env["VECTORQL_MILVUS_URI"] = str(data / "milvus.db")
    elif explicit := os.environ.get("VECTORQL_MILVUS_BIN_DIR"):
        env["VECTORQL_MILVUS_BIN_DIR"] = explicit  # where the test run keeps the binary
    env.update(
        VECTORQL_DATABASE_URL=f"sqlite+aiosqlite:///{data / 'vectorql.db'}",
        VECTORQL_LOG_LEVEL="WARNING",
        VECTORQL_LOG_FORMAT="console",
        PYTHONUNBUFFERED="1",
        # the code under test is the checkout these tests are in, whatever the working directory
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    env.update({f"VECTORQL_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextlib.contextmanager
def serve_api(
    data: Path,
    *,
    admin_key: bool = False,
    default_milvus: bool = False,
    args: tuple[str, ...] = (),
    timeout: float = 180.0,
    **settings: Any,
) -> Iterator[ApiServer]:
    """``vectorql serve`` on a free loopback port with its data in ``data`` (see ``api_env``),
    run from ``data`` (no stray .env), ready (``/readyz`` 200) when this yields, stopped after
    (SIGTERM to its process group, SIGKILL after 30 s). ``admin_key``: an admin key is made first
    with ``vectorql keys create`` (for servers with ``auth="apikey"``)."""
    import httpx

    data.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = api_env(data, default_milvus=default_milvus, host=LOOPBACK, port=port, **settings)
    key = ""
    if admin_key:
        key = subprocess.run(
            [*VECTORQL, "keys", "create", "--scope", "admin"],
            cwd=data,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=True,
        ).stdout.strip()
    log = data / f"server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*VECTORQL, "serve", *args],
            cwd=data,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ApiServer(url=f"http://{LOOPBACK}:{port}", log=log, process=process, env=env, key=key)
    try:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            if process.poll() is not None:
                raise ServerStartError(
                    f"vectorql serve exited with {process.returncode}:\n{log.read_text()[-4000:]}",
                    exited=True,
                )
            try:
                response = httpx.get(f"{server.url}/readyz", timeout=2)
                if response.status_code == 200:
                    break
                last = f"{response.status_code} {response.text}"
            except httpx.TransportError as e:
                last = repr(e)
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"vectorql serve not ready in {timeout:.0f} s ({last}):\n"
                    f"{log.read_text()[-4000:]}"
                )
            time.sleep(0.2)
        yield server
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group (uvicorn's workers too), SIGKILL if it has not ended in 30 s."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


# --------------------------------------------------------------------------------------------
# Self-check: python -m tests.servers


def smoke_test(uri: str, collection: str = "servers_smoke") -> dict[str, float]:
    """Create, insert, index, search, count and drop a small collection; return timings (s)."""
    import random

    from pymilvus import DataType, MilvusClient

    timings: dict[str, float] = {}
    t0 = time.monotonic()
    client = MilvusClient(uri=uri, timeout=30)
    try:
        if client.has_collection(collection):
            client.drop_collection(collection)
        schema = client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("tenant", DataType.VARCHAR, max_length=64, is_partition_key=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=16)
        index = client.prepare_index_params()
        index.add_index(
            "vector", index_type="HNSW", metric_type="COSINE", params={"M": 8, "efConstruction": 64}
        )
        client.create_collection(collection, schema=schema, index_params=index)
        timings["create+load"] = time.monotonic() - t0
        rng = random.Random(7)
        rows = [
            {"id": f"r{i}", "tenant": f"t{i % 3}", "vector": [rng.random() for _ in range(16)]}
            for i in range(500)
        ]
        t = time.monotonic()
        # insert, not upsert: Milvus 2.3.5 upsert routes rows by the wrong field when the schema
        # has a partition key (milvus-io/milvus#30607, fixed in 2.3.10), so they vanish from
        # partition-key filters.
        client.insert(collection, rows)
        client.flush(collection)
        timings["insert+flush"] = time.monotonic() - t
        t = time.monotonic()
        hits = client.search(
            collection,
            data=[rows[0]["vector"]],
            limit=3,
            filter='tenant == "t0"',
            consistency_level="Strong",
        )
        timings["search"] = time.monotonic() - t
        if hits[0][0]["id"] != "r0":
            raise AssertionError(f"unexpected top hit: {hits[0][0]}")
        count = client.query(
            collection, filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        if count[0]["count(*)"] != 500:
            raise AssertionError(f"count(*) = {count}")
        client.drop_collection(collection)
    finally:
        client.close()
    timings["total"] = time.monotonic() - t0
    return timings


def smoke_collection_kept(uri: str, *, check: bool = False) -> None:
    """Create a loaded collection with 10 rows (or, with `check`, assert it is all still there)."""
    from pymilvus import DataType, MilvusClient

    client = MilvusClient(uri=uri, timeout=30)
    try:
        if not check:
            schema = client.create_schema(auto_id=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=16)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=2)
            index = client.prepare_index_params()
            index.add_index("vector", index_type="FLAT", metric_type="L2")
            client.create_collection("kept", schema=schema, index_params=index)
            client.insert("kept", [{"id": f"k{i}", "vector": [i, 1.0]} for i in range(10)])
            return
        client.load_collection("kept")  # Milvus Lite comes back with it unloaded
        rows = client.query(
            "kept", filter="", output_fields=["count(*)"], consistency_level="Strong"
        )
        if rows[0]["count(*)"] != 10:
            raise AssertionError(f"restart lost rows: {rows}")
    finally:
        client.close()


def _self_check() -> int:
    def fmt(timings: Mapping[str, float]) -> str:
        return ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items())

    failures = 0
    with tempfile.TemporaryDirectory(prefix="vectorql-servers-") as tmp:
        root = Path(tmp)

        t = time.monotonic()
        print(f"milvus-lite in-process: {fmt(smoke_test(milvus_lite_db_uri(root)))}")
        print(f"  (whole: {time.monotonic() - t:.2f} s)")

        starters: list[tuple[str, Any]] = [
            ("milvus-lite server", start_milvus_lite_server),
            ("milvus standalone", start_milvus_standalone),
        ]
        for label, starter in starters:
            try:
                server: MilvusProcess = starter(root / label.replace(" ", "-"))
            except Exception as exc:  # noqa: BLE001 - report and go on
                failures += 1
                print(f"{label}: FAILED to start: {exc}")
                continue
            try:
                print(
                    f"{label}: {server.uri} pid {server.pid} ready in "
                    f"{server.start_seconds:.2f} s, RSS {server.rss_bytes() / 2**20:.0f} MiB"
                )
                print(f"  smoke: {fmt(smoke_test(server.uri))}")
                print(f"  RSS after smoke {server.rss_bytes() / 2**20:.0f} MiB")
                smoke_collection_kept(server.uri)
                for hard in (False, True):
                    t = time.monotonic()
                    server.restart(hard=hard)
                    whole = time.monotonic() - t
                    smoke_collection_kept(server.uri, check=True)
                    print(
                        f"  restart after {'SIGKILL' if hard else 'stop'}: {whole:.2f} s in all, "
                        f"API after {server.ready_seconds:.2f} s, collections queryable after "
                        f"{server.start_seconds:.2f} s; data kept"
                    )
            except Exception as exc:  # noqa: BLE001 - report and go on
                failures += 1
                print(f"{label}: FAILED: {type(exc).__name__}: {exc}")
            finally:
                t = time.monotonic()
                code = server.stop()
                print(f"  stopped in {time.monotonic() - t:.2f} s (exit code {code})")
    print("self-check", "FAILED" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(_self_check())
