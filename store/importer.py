"""Bulk import of JSON Lines files through the store's own write protocol.

Each line is one record, ``{"id", "vector", "metadata", "text", "tenant"}``, the vector a list of
numbers or base64 float32 (as in ``upsertRecords``). The file may be gzip-compressed (detected by
its magic bytes, not its name). Lines go to ``validate_records`` and ``Writer.write`` in batches,
so an import obeys exactly the rules and the SQL-then-Milvus protocol of the API.

Guarantees:

- A bad line (invalid JSON, not an object, an unknown key, or a record that fails validation) is
  reported with its 1-based line number; the good lines around it are written. With
  ``strict=True`` the import stops at the first bad line: every good line before it is written,
  nothing from it on.
- A line without an ``id`` gets ``uuid5`` of its bytes, so running the same file again upserts
  the same records instead of adding copies; an interrupted import is finished by re-running it.
- A later line with the same id as an earlier one replaces it, whatever the batch size (a batch
  is cut before an id it already holds, since one batch must not hold an id twice).
- At the end, Milvus is flushed so that searches right after the import take the indexed path.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from store.codec import VectorFormatError, parse_vector
from store.errors import Unavailable
from store.ingest import IncomingRecord, validate_records
from store.records import CollectionInfo, RecordData
from store.service import Store

DEFAULT_BATCH = 1000
MAX_BAD_LINES_KEPT = 10_000
KEYS = ("id", "vector", "metadata", "text", "tenant")
# Namespace of the ids given to lines without one: uuid5(IMPORT_NAMESPACE, line).
IMPORT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:vectorql:import-line")

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was not written, and why (every reason found, joined by ``; ``)."""

    line: int
    reason: str
    id: str | None = None


@dataclass(frozen=True, slots=True)
class ImportProgress:
    """Where an import is; passed to the progress callback after every batch."""

    lines_read: int
    records_written: int
    bad_lines: int
    bytes_read: int
    total_bytes: int
    seconds: float

    @property
    def records_per_second(self) -> float:
        return self.records_written / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """The outcome of an import.

    ``records_written`` counts upserts (a line repeating an earlier id counts again).
    ``bad_lines`` holds the first ``MAX_BAD_LINES_KEPT`` bad lines in line order; ``bad_count``
    counts them all. ``stopped_at`` is the line a strict import stopped at, else None.
    """

    collection: str
    lines_read: int
    records_written: int
    bad_lines: tuple[BadLine, ...]
    bad_count: int
    seconds: float
    stopped_at: int | None = None

    @property
    def records_per_second(self) -> float:
        return self.records_written / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.bad_count == 0


ProgressCallback = Callable[[ImportProgress], None]


async def import_jsonl(
    store: Store,
    *,
    path: str | os.PathLike[str],
    collection: str,
    batch_size: int = DEFAULT_BATCH,
    strict: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Import a JSON Lines file (plain or gzip) into ``collection``; see the module docstring.

    Raises ``NotFound`` for an unknown collection, ``OSError`` for an unreadable file, and
    ``Unavailable`` when Milvus fails mid-import (the message says which lines were done; rows of
    the failed batch stay ``pending`` for the reconciler, and re-running the import is safe).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    info = await store.collections.get(collection)
    # Milvus Lite reopens an indexed collection unloaded (after a crash, for instance).
    await store.vectors.ensure_loaded(info.milvus_name)
    run = _Run(info=info, strict=strict)
    started = time.perf_counter()
    reader = _ChunkReader(Path(path), batch_size=batch_size, stop_at_bad_line=strict)
    try:
        # Reading and parsing the next batch (in a thread) overlaps with writing this one.
        pending = asyncio.ensure_future(asyncio.to_thread(reader.next_chunk))
        while True:
            chunk = await pending
            if chunk is None:
                break
            pending = asyncio.ensure_future(asyncio.to_thread(reader.next_chunk))
            await run.write(store, chunk)
            if on_progress is not None:
                on_progress(
                    ImportProgress(
                        lines_read=run.lines_read,
                        records_written=run.written,
                        bad_lines=run.bad_count,
                        bytes_read=chunk.bytes_read,
                        total_bytes=reader.total_bytes,
                        seconds=time.perf_counter() - started,
                    )
                )
            if run.stopped_at is not None:
                break
    finally:
        # A read-ahead may still be running in its thread: close the file after it.
        await asyncio.gather(pending, return_exceptions=True)
        reader.close()
    if run.written:
        await store.writer.flush(info)
    return ImportSummary(
        collection=collection,
        lines_read=run.stopped_at if run.stopped_at is not None else reader.lines_read,
        records_written=run.written,
        bad_lines=tuple(run.bad),
        bad_count=run.bad_count,
        seconds=time.perf_counter() - started,
        stopped_at=run.stopped_at,
    )


def line_id(raw: bytes) -> str:
    """The id of a line that has none: stable across runs, so re-imports do not duplicate."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, raw.decode()))


def parse_line(raw: bytes) -> IncomingRecord | str:
    """One JSON line as an incoming record, or why it cannot be one."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        return f"invalid JSON: {e}"
    if not isinstance(obj, dict):
        return f"not a JSON object (got {_kind(obj)})"
    unknown = [k for k in obj if k not in KEYS]
    if unknown:
        listed = ", ".join(repr(k) for k in unknown[:5])
        return f"unknown key {listed} (a line has {', '.join(KEYS)})"
    record_id = obj.get("id")
    if record_id is None:
        record_id = line_id(raw)
    elif isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)  # as GraphQL's ID does
    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        return f"text must be a string (got {_kind(text)})"
    tenant = obj.get("tenant")
    if tenant is not None and not isinstance(tenant, str):
        return f"tenant must be a string (got {_kind(tenant)})"
    raw_vector = obj.get("vector")
    vector = None
    vector_error = None
    if raw_vector is not None:
        try:
            vector = parse_vector(raw_vector)
        except VectorFormatError as e:
            vector_error = str(e)
    return IncomingRecord(
        vector=vector,
        vector_error=vector_error,
        id=record_id,
        metadata=obj.get("metadata"),
        text=text,
        tenant=tenant,
    )


# -- reading -------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    """Consecutive lines: the parsed records and the lines that could not be parsed."""

    records: list[tuple[int, IncomingRecord]] = field(default_factory=list)
    unparsed: list[BadLine] = field(default_factory=list)
    last_line: int = 0
    bytes_read: int = 0


class _ChunkReader:
    """Reads and parses lines into chunks of at most ``batch_size`` records (blocking I/O)."""

    def __init__(self, path: Path, *, batch_size: int, stop_at_bad_line: bool) -> None:
        self.total_bytes = path.stat().st_size
        self._raw: io.BufferedReader = path.open("rb")
        try:
            gzipped = self._raw.read(2) == _GZIP_MAGIC
            self._raw.seek(0)
            self._lines: io.BufferedIOBase = (
                gzip.GzipFile(fileobj=self._raw, mode="rb") if gzipped else self._raw
            )
        except BaseException:
            self._raw.close()
            raise
        self._batch_size = batch_size
        self._stop_at_bad_line = stop_at_bad_line
        self._iter: Iterator[bytes] = iter(self._lines)
        self._carry: tuple[int, IncomingRecord] | None = None
        self._done = False
        self.lines_read = 0

    def next_chunk(self) -> _Chunk | None:
        if self._done:
            return None
        chunk = _Chunk()
        ids: set[str] = set()
        if self._carry is not None:
            line_no, record = self._carry
            self._carry = None
            self._add(chunk, ids, line_no, record)
        while len(chunk.records) < self._batch_size:
            try:
                raw = next(self._iter)
            except StopIteration:
                self._done = True
                break
            self.lines_read += 1
            line_no = self.lines_read
            if line_no == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            parsed = parse_line(raw)
            if isinstance(parsed, str):
                chunk.unparsed.append(BadLine(line=line_no, reason=parsed))
                if self._stop_at_bad_line:
                    self._done = True
                    break
                continue
            if isinstance(parsed.id, str) and parsed.id in ids:
                # One batch must not hold an id twice: this line opens the next batch.
                self._carry = (line_no, parsed)
                break
            self._add(chunk, ids, line_no, parsed)
        chunk.last_line = self.lines_read
        chunk.bytes_read = self._raw.tell()
        if not chunk.records and not chunk.unparsed and self._done:
            return None
        return chunk

    @staticmethod
    def _add(chunk: _Chunk, ids: set[str], line_no: int, record: IncomingRecord) -> None:
        chunk.records.append((line_no, record))
        if isinstance(record.id, str):
            ids.add(record.id)

    def close(self) -> None:
        self._lines.close()
        self._raw.close()


# -- writing -------------------------------------------------------------------------------------


@dataclass
class _Run:
    info: CollectionInfo
    strict: bool
    written: int = 0
    lines_read: int = 0
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    stopped_at: int | None = None

    async def write(self, store: Store, chunk: _Chunk) -> None:
        incoming = [r for _, r in chunk.records]
        valid, problems = validate_records(self.info, incoming)
        reasons: dict[int, list[str]] = {}
        for p in problems:
            reasons.setdefault(p.index or 0, []).append(p.message)
        bad = list(chunk.unparsed)
        for index, messages in reasons.items():
            line_no, record = chunk.records[index]
            shown_id = record.id if isinstance(record.id, str) else None
            bad.append(BadLine(line=line_no, reason="; ".join(messages), id=shown_id))
        bad.sort(key=lambda b: b.line)
        if self.strict and bad:
            bad = bad[:1]
            self.stopped_at = bad[0].line
        lines = [chunk.records[i][0] for i, _ in valid]
        records: list[RecordData] = [
            r
            for (_, r), line_no in zip(valid, lines, strict=True)
            if self.stopped_at is None or line_no < self.stopped_at
        ]
        if records:
            try:
                await store.writer.write(self.info, records)
            except Unavailable as e:
                first = lines[0]
                raise Unavailable(
                    f"import stopped in the batch of lines {first}-{chunk.last_line} "
                    f"({self.written} records written before line {first}): {e.message}",
                    extensions={
                        **e.extensions,
                        "written": self.written,
                        "first_line_not_done": first,
                    },
                ) from e
        self.written += len(records)
        self.lines_read = self.stopped_at or chunk.last_line
        self.bad_count += len(bad)
        room = MAX_BAD_LINES_KEPT - len(self.bad)
        if room > 0:
            self.bad.extend(bad[:room])


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
