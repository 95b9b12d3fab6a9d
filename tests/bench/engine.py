"""What the default engine costs: ``python -m tests.bench.engine`` (``make bench-engine``).

The managed Milvus 2.3 standalone (``VECTORQL_MILVUS_URI=local:DIR``), measured as vectorql's
commands use it, on fresh temporary directories:

- start: seconds until it answers (``store.local_engine``), on a new data directory (cold) and
  on the same one again (warm), and its resident memory when idle; ``--runs`` times, medians;
- import: ``vectorql import`` of the debian-packages dataset (63,436 records, 384-d) into an
  HNSW collection, the command joining the instance this process holds; the seconds from the
  command's start until it returns, until a sample of the records are each their own vector's
  top hit (searchable), and until the HNSW index covers every row (indexed); then the server's
  resident memory with those records loaded.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from store import (
    CollectionInfo,
    CollectionSpec,
    IndexSpec,
    IndexType,
    Metric,
    Store,
    StoreConfig,
    local_engine,
    rss_bytes_of_group,
)
from tests.bench.search import COLLECTION, DEFAULT_DATA, FIELDS, REPO, wait_indexed

MIB = 2**20
IDLE_SECONDS = 5.0  # after start, before reading the resident memory
SAMPLE = 50  # imported records that must be found (each by its own vector) to call it searchable


def measure_start(root: Path, runs: int) -> dict[str, float]:
    cold: list[float] = []
    warm: list[float] = []
    rss: list[float] = []
    for run in range(runs):
        data = root / f"start-{run}"
        for times in (cold, warm):
            began = time.perf_counter()
            with local_engine(data) as engine:
                times.append(time.perf_counter() - began)
                assert engine.pid is not None, engine.reason
                time.sleep(IDLE_SECONDS)
                rss.append(rss_bytes_of_group(engine.pid) / MIB)
            label = "cold" if times is cold else "warm"
            print(f"start {run}: {label} {times[-1]:.1f} s, idle RSS {rss[-1]:.0f} MiB", flush=True)
    return {
        "cold_start_s": statistics.median(cold),
        "warm_start_s": statistics.median(warm),
        "idle_rss_mib": statistics.median(rss),
    }


def write_jsonl(data: Path, target: Path, limit: int | None) -> int:
    vectors = np.load(data / "vectors.f16.npy", mmap_mode="r")
    count = 0
    with gzip.open(data / "records.jsonl.gz", "rt") as src, target.open("w") as out:
        for i, line in enumerate(src):
            if limit is not None and i >= limit:
                break
            record = json.loads(line)
            raw = np.asarray(vectors[i], dtype="<f4").tobytes()
            record["vector"] = base64.b64encode(raw).decode()
            out.write(json.dumps(record) + "\n")
            count += 1
    return count


async def measure_import(root: Path, data: Path, limit: int | None) -> dict[str, float]:
    work = root / "import"
    work.mkdir()
    jsonl = work / "records.jsonl"
    rows = write_jsonl(data, jsonl, limit)
    database_url = f"sqlite+aiosqlite:///{work / 'vectorql.db'}"
    with local_engine(work / "data") as engine:
        assert engine.pid is not None, engine.reason
        store = await Store.open(
            StoreConfig(
                milvus_uri=engine.uri,
                milvus_token=engine.token,
                database_url=database_url,
                milvus_timeout=600,
            )
        )
        try:
            dimension = int(np.load(data / "vectors.f16.npy", mmap_mode="r").shape[1])
            spec = CollectionSpec(
                name=COLLECTION,
                dimension=dimension,
                metric=Metric.COSINE,
                fields=FIELDS,
                index=IndexSpec(IndexType.HNSW, {}),
            )
            info = await store.collections.create(spec)
            env = {k: v for k, v in os.environ.items() if not k.startswith("VECTORQL_")}
            env.update(
                VECTORQL_MILVUS_URI=f"local:{work / 'data'}",
                VECTORQL_DATABASE_URL=database_url,
                VECTORQL_LOG_LEVEL="WARNING",
                PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            )
            began = time.perf_counter()
            done = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "graph.cli", "import", str(jsonl), "-c", COLLECTION],
                env=env,
                cwd=work,
                capture_output=True,
                text=True,
                check=False,
            )
            imported = time.perf_counter() - began
            if done.returncode != 0:
                raise RuntimeError(f"vectorql import failed:\n{done.stdout}\n{done.stderr}")
            print(done.stdout.strip(), flush=True)
            await until_found(store, info, data, rows)
            searchable = time.perf_counter() - began
            await wait_indexed(store, info, rows)
            indexed = time.perf_counter() - began
            await asyncio.sleep(IDLE_SECONDS)
            loaded_rss = rss_bytes_of_group(engine.pid) / MIB
        finally:
            await store.close()
    print(
        f"import: {rows} records, command {imported:.1f} s, searchable after {searchable:.1f} s, "
        f"index built over every row after {indexed:.1f} s; RSS with them {loaded_rss:.0f} MiB",
        flush=True,
    )
    return {
        "records": rows,
        "import_command_s": imported,
        "import_to_searchable_s": searchable,
        "import_to_indexed_s": indexed,
        "loaded_rss_mib": loaded_rss,
    }


async def until_found(store: Store, info: CollectionInfo, data: Path, rows: int) -> None:
    """Wait until each of a sample of the imported records is its own vector's top hit."""
    vectors = np.load(data / "vectors.f16.npy", mmap_mode="r")
    with gzip.open(data / "records.jsonl.gz", "rt") as src:
        ids = [json.loads(line)["id"] for _, line in zip(range(rows), src, strict=False)]
    sample = np.random.default_rng(0).choice(rows, size=min(SAMPLE, rows), replace=False)
    queries = [np.asarray(vectors[i], dtype=np.float32) for i in sample]
    while True:
        hits, _ = await store.searcher.search(info, queries, top_k=1)
        if all(h and h[0].id == ids[i] for h, i in zip(hits, sample, strict=True)):
            return
        await asyncio.sleep(0.5)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench.engine", description=__doc__)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset directory")
    p.add_argument("--runs", type=int, default=3, help="start measurements (medians)")
    p.add_argument("--limit", type=int, default=None, help="import only N records")
    p.add_argument("--skip-import", action="store_true", help="start times and idle RSS only")
    p.add_argument("--json", type=Path, help="write the results here")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="vectorql-bench-engine-") as tmp:
        root = Path(tmp)
        report: dict[str, float] = measure_start(root, args.runs)
        if not args.skip_import:
            report.update(asyncio.run(measure_import(root, args.data, args.limit)))
    print(json.dumps(report, indent=1))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
