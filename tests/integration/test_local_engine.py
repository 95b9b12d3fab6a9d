"""The default engine (``VECTORQL_MILVUS_URI`` unset, i.e. ``local``): ``vectorql serve`` starts
a Milvus 2.3 standalone of its own under ``./data/milvus/``, serves on it, and stops it on
SIGTERM; the data survives a restart; ``vectorql import`` joins the running instance instead of
starting a second; ``vectorql reconcile`` alone starts one for its duration; where the standalone
cannot be had, or a Milvus Lite file is already there, the same commands run on Milvus Lite.

Real processes throughout: ``vectorql serve`` from ``tests.servers.serve_api`` (run from a
temporary directory, so ``./data`` is that directory's), the commands as ``python -m graph.cli``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymilvus import MilvusClient, MilvusException

from store import MilvusStandalone, local_engine, rss_bytes_of_group
from store.milvus.process import is_auth_refusal
from tests.integration.test_import import line, vec, write_lines
from tests.servers import ApiServer, serve_api

DIM = 8
# the servers here load no embedding model: what they test is the engine under them
LIGHT = {"embedders": "[]", "reconcile_interval": 0}

CREATE = """mutation($input: CreateCollectionInput!) { createCollection(input: $input) { name } }"""
UPSERT = """mutation($c: String!, $r: [RecordInput!]!) {
  upsertRecords(collection: $c, records: $r) { upserted }
}"""
SEARCH = """query($c: String!, $v: Vector!) {
  search(collection: $c, vector: $v, topK: 3) { hits { id record { metadata } } }
}"""


def graphql(server: ApiServer, query: str, **variables: Any) -> dict[str, Any]:
    response = httpx.post(server.graphql, json={"query": query, "variables": variables}, timeout=60)
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


def nearest(server: ApiServer, collection: str, vector: list[float]) -> list[str]:
    hits = graphql(server, SEARCH, c=collection, v=vector)["search"]["hits"]
    return [hit["id"] for hit in hits]


def managed_server(data: Path) -> dict[str, Any] | None:
    """What ``data/milvus/server.json`` says runs (None when no managed server runs)."""
    state = data / "data" / "milvus" / "server.json"
    return json.loads(state.read_text()) if state.exists() else None


def list_collections(uri: str, token: str) -> list[str]:
    client = MilvusClient(uri=uri, token=token, timeout=10)
    try:
        return list(client.list_collections())
    finally:
        client.close()


def refused(uri: str, token: str) -> None:
    with pytest.raises(MilvusException) as caught:
        list_collections(uri, token)
    assert is_auth_refusal(caught.value), caught.value


def expr(port: int, key: str) -> tuple[int, str]:
    """Milvus's /expr debugging endpoint on its metrics port: (status, output or message)."""
    answer = httpx.get(f"http://127.0.0.1:{port}/expr", params={"code": "1+1", "auth": key})
    body = answer.json()
    return answer.status_code, str(body.get("output", body.get("msg", "")))


def running(pid: int) -> bool:
    return rss_bytes_of_group(pid) > 0  # anything left in the server's process group


def vectorql(data: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "graph.cli", *args],
        env=env,
        cwd=data,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_serve_with_no_configuration_runs_the_managed_standalone_and_stops_it(
    tmp_path: Path,
) -> None:
    with serve_api(tmp_path, default_milvus=True, **LIGHT) as server:
        state = managed_server(tmp_path)
        assert state is not None, server.log.read_text()
        assert state["uri"].startswith("http://127.0.0.1:")
        assert running(state["pid"])
        ready = httpx.get(f"{server.url}/readyz", timeout=10).json()
        assert ready["checks"]["milvus"]["ok"] is True

        graphql(server, CREATE, input={"name": "docs", "dimension": DIM})
        records = [{"id": f"d{i}", "vector": vec(i), "metadata": {"n": i}} for i in range(20)]
        assert graphql(server, UPSERT, c="docs", r=records)["upsertRecords"]["upserted"] == 20
        assert nearest(server, "docs", vec(7))[0] == "d7"
        # Milvus binds every interface: the managed one wants the root password it was given,
        # and its /expr endpoint (code over its settings) a key of its own, both kept 0600.
        secret = tmp_path / "data" / "milvus" / "secrets.json"
        assert secret.stat().st_mode & 0o777 == 0o600
        saved = json.loads(secret.read_text())
        assert len(saved["root_password"]) >= 24
        for token in ("", "root:Milvus", "root:wrong"):
            refused(state["uri"], token)
        assert len(list_collections(state["uri"], f"root:{saved['root_password']}")) == 1
        metrics = json.loads((tmp_path / "data" / "milvus" / "ports.json").read_text())
        assert expr(metrics["metrics_port"], "by-dev") == (
            500,
            "failed to execute expression, the expr auth is invalid",
        )
        assert expr(metrics["metrics_port"], saved["etcd_root"]) == (200, "2")
    # SIGTERM to `vectorql serve`: it stops the server it started, whole process group and all.
    assert not running(state["pid"])
    assert managed_server(tmp_path) is None

    with serve_api(tmp_path, default_milvus=True, **LIGHT) as server:
        again = managed_server(tmp_path)
        assert again is not None
        assert again["uri"] == state["uri"]  # the ports it was given are kept in ./data/milvus
        assert nearest(server, "docs", vec(7))[0] == "d7"  # the data too
    assert not running(again["pid"])


def test_a_standalone_started_without_a_password_is_locked_on_its_next_start(
    tmp_path: Path,
) -> None:
    # A data directory from before authentication (or a new one, until the first start changes
    # it) has Milvus's default root password; a user made while it was open is dropped.
    directory = tmp_path / "data" / "milvus"
    with MilvusStandalone(directory) as open_server:
        client = open_server.client(timeout=10)
        client.create_collection("kept", dimension=4)
        client.create_user("intruder", "intruder-pw")
        client.close()
    with local_engine(tmp_path / "data") as engine:
        assert engine.kind == "standalone", engine.reason
        saved = json.loads((directory / "secrets.json").read_text())
        assert engine.token == f"root:{saved['root_password']}"
        assert saved["etcd_root"] == "by-dev"  # its metadata is there: kept
        refused(engine.uri, "root:Milvus")
        refused(engine.uri, "intruder:intruder-pw")
        client = MilvusClient(uri=engine.uri, token=engine.token, timeout=10)
        assert client.list_users() == ["root"]
        assert client.list_collections() == ["kept"]
        client.close()


def test_import_joins_the_instance_serve_runs_and_reconcile_alone_starts_its_own(
    tmp_path: Path,
) -> None:
    path = write_lines(
        tmp_path / "in.jsonl", [line(id=f"r{i}", vector=vec(100 + i)) for i in range(30)]
    )
    with serve_api(tmp_path, default_milvus=True, **LIGHT) as server:
        state = managed_server(tmp_path)
        assert state is not None
        graphql(server, CREATE, input={"name": "docs", "dimension": DIM})

        done = vectorql(tmp_path, dict(server.env), "import", str(path), "-c", "docs")

        assert done.returncode == 0, done.stderr
        assert "30 records written from 30 lines" in done.stdout
        assert "through its API" not in done.stderr  # the store itself, on the shared server
        assert managed_server(tmp_path) == state  # joined: not a second server, not stopped
        assert running(state["pid"])
        assert nearest(server, "docs", vec(112))[0] == "r12"
    assert not running(state["pid"])

    done = vectorql(tmp_path, dict(server.env), "reconcile")

    assert done.returncode == 0, done.stderr
    assert "0 rows still pending" in done.stdout
    assert managed_server(tmp_path) is None  # started for the command, stopped after it
    log = (tmp_path / "data" / "milvus" / "logs" / "stdout.log").read_text()
    assert log.count("==== start") == 2  # serve's and reconcile's, none for the import


def test_without_the_standalone_the_default_is_milvus_lite_and_stays_so(tmp_path: Path) -> None:
    # The binary lookup pointed at a directory that cannot exist: as if the package were missing.
    nowhere = {"milvus_bin_dir": "/dev/null/nowhere", **LIGHT}
    with serve_api(tmp_path, default_milvus=True, **nowhere) as server:
        log = server.log.read_text()
        assert "the managed Milvus standalone cannot run here" in log
        assert "/dev/null/nowhere" in log
        graphql(server, CREATE, input={"name": "docs", "dimension": DIM})
        records = [{"id": f"d{i}", "vector": vec(i)} for i in range(10)]
        graphql(server, UPSERT, c="docs", r=records)
        assert nearest(server, "docs", vec(3))[0] == "d3"
    assert (tmp_path / "data" / "milvus.db").is_dir()
    assert managed_server(tmp_path) is None

    # With the standalone available again, an existing Lite file keeps its data where it is.
    with serve_api(tmp_path, default_milvus=True, **LIGHT) as server:
        log = server.log.read_text()
        assert "keeps using Milvus Lite" in log
        assert "VECTORQL_MILVUS_URI=" in log  # and says how to switch or keep it quietly
        assert managed_server(tmp_path) is None
        assert nearest(server, "docs", vec(3))[0] == "d3"


def test_workers_share_the_managed_standalone(tmp_path: Path) -> None:
    with serve_api(tmp_path, default_milvus=True, args=("--workers", "2"), **LIGHT) as s:
        state = managed_server(tmp_path)
        assert state is not None
        graphql(s, CREATE, input={"name": "docs", "dimension": DIM})
        graphql(s, UPSERT, c="docs", r=[{"id": f"d{i}", "vector": vec(i)} for i in range(10)])
        # Each request may land on either worker: every one sees the same engine.
        assert {nearest(s, "docs", vec(4))[0] for _ in range(6)} == {"d4"}
    assert not running(state["pid"])


def test_a_standalone_holding_data_that_cannot_start_is_an_error_not_an_empty_lite(
    tmp_path: Path,
) -> None:
    # A fallback to a new Milvus Lite file would hide the standalone's data, and be chosen
    # from then on: with data there, the command stops and says why instead.
    standalone = tmp_path / "data" / "milvus"
    (standalone / "data" / "etcd.data").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
    env["VECTORQL_EMBEDDERS"] = "[]"

    (standalone / "secrets.json").write_text("{")  # damaged
    done = vectorql(tmp_path, env, "reconcile")
    assert done.returncode == 2, done.stderr
    assert "holds data but cannot start" in done.stderr
    assert "secrets.json is damaged" in done.stderr
    assert "Traceback" not in done.stderr

    (standalone / "secrets.json").write_text(
        json.dumps({"root_password": "p" * 32, "etcd_root": "vq-test"})
    )
    done = vectorql(tmp_path, {**env, "VECTORQL_MILVUS_BIN_DIR": "/dev/null/nowhere"}, "reconcile")
    assert done.returncode == 2, done.stderr
    assert "holds data but cannot start" in done.stderr
    assert not (tmp_path / "data" / "milvus.db").exists()
