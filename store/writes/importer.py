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
- Batches go through the protocol one after another, with one overlap: a batch is validated and
  stored in SQL (``pending``) while the batch before it is upserted into Milvus and marked
  ``indexed``. Milvus still receives the batches in file order, one at a time, so a later line
  replaces an earlier one there as in SQL (and the revision check keeps the earlier batch from
  marking the later row indexed).
- Milvus is flushed once, at the end, so that searches right after the import take the indexed
  path; not every ``flush_threshold`` rows as API writes are: each flush of Milvus 2.3 took
  seconds and left a small segment that was indexed, then compacted and indexed again
  (docs/measurements.md, "import").

Reading and the line bookkeeping (``import_batches``) are separate from writing: ``import_jsonl``
writes through this process's store, and the ``vectorql import`` command can also write through a
running server's API (``graph.commands.remote``) with the same batches, line numbers and summary.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from store.codec import VectorFormatError, parse_vector
from store.errors import Unavailable
from store.records import CollectionInfo, RecordData
from store.sql import statistics
from store.writes.incoming import IncomingRecord, validate_records
from store.writes.lines import (
    BadLine,
    Batch,
    LineReader,
    decode_line,
    first_bad,
    record_errors,
)

if TYPE_CHECKING:  # the store is built from this package's modules: only its type is needed
    from store.service import Store

DEFAULT_BATCH = 1000
MAX_BAD_LINES_KEPT = 10_000

T = TypeVar("T")

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What writing one batch did: records written, its bad lines in line order (unparsed ones
    included), and with ``strict`` the line the import stops at.

    ``finish``: the rest of the batch's write, when the writer splits it in two (the store's:
    Milvus and the ``indexed`` mark); ``import_batches`` runs it while the next batch's first
    part runs, and awaits it before the next batch's ``finish`` starts."""

    written: int
    bad: list[BadLine]
    stopped_at: int | None = None
    finish: Callable[[], Awaitable[None]] | None = None


BatchWriter = Callable[[Batch[T]], Awaitable[BatchOutcome]]


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
    summary = await import_batches(
        path,
        collection=collection,
        parse=parse_line,
        key=_incoming_id,
        write=_StoreWriter(store, info, strict=strict),
        batch_size=batch_size,
        strict=strict,
        on_progress=on_progress,
    )
    if summary.records_written:
        await store.writer.flush(info)
        try:
            await statistics.analyze(store.engine)
        except Exception as e:  # noqa: BLE001 - the records are written; autovacuum catches up
            log.warning("could not refresh the SQL statistics after the import: %s", e)
    return summary


async def import_batches(
    path: str | os.PathLike[str],
    *,
    collection: str,
    parse: Callable[[bytes], T | str],
    key: Callable[[T], str | None],
    write: BatchWriter[T],
    batch_size: int = DEFAULT_BATCH,
    strict: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ImportSummary:
    """Read ``path`` in batches of ``batch_size`` records and hand each to ``write``.

    ``parse`` turns a line into a record or the reason it is not one; ``key`` is a record's id
    (a batch is cut before an id it already holds). With ``strict`` reading stops at the first
    unparsed line, and the import at the line ``write`` says it stopped at. An ``Unavailable``
    from ``write`` is raised again naming the lines that were done.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    tally = _Tally()
    started = time.perf_counter()
    reader = LineReader(
        Path(path), parse=parse, key=key, batch_size=batch_size, stop_at_bad_line=strict
    )
    # The batch before the one being written, its ``finish`` running.
    finishing: tuple[Batch[T], BatchOutcome, asyncio.Future[None] | None] | None = None

    async def settle() -> None:
        """Wait for the batch in ``finishing`` and count it."""
        nonlocal finishing
        if finishing is None:
            return
        batch, outcome, rest = finishing
        finishing = None
        if rest is not None:
            try:
                await rest
            except Unavailable as e:
                raise _stopped(batch, tally, e) from e
        tally.add(batch, outcome)
        if on_progress is not None:
            on_progress(
                ImportProgress(
                    lines_read=tally.lines_read,
                    records_written=tally.written,
                    bad_lines=tally.bad_count,
                    bytes_read=batch.bytes_read,
                    total_bytes=reader.total_bytes,
                    seconds=time.perf_counter() - started,
                )
            )

    try:
        # Reading and parsing the next batch (in a thread) overlaps with writing this one.
        pending = asyncio.ensure_future(asyncio.to_thread(reader.next_batch))
        while True:
            batch = await pending
            if batch is None:
                break
            pending = asyncio.ensure_future(asyncio.to_thread(reader.next_batch))
            try:
                outcome = await write(batch)
            except Unavailable as e:
                await settle()
                raise _stopped(batch, tally, e) from e
            await settle()
            rest = asyncio.ensure_future(outcome.finish()) if outcome.finish else None
            finishing = (batch, outcome, rest)
            if outcome.stopped_at is not None:
                break
        await settle()
    finally:
        # A read-ahead may still be running in its thread: close the file after it; a batch's
        # Milvus write left running by an error ends before the import does.
        running = finishing[2] if finishing is not None else None
        await asyncio.gather(pending, *([running] if running else []), return_exceptions=True)
        reader.close()
    return ImportSummary(
        collection=collection,
        lines_read=tally.stopped_at if tally.stopped_at is not None else reader.lines_read,
        records_written=tally.written,
        bad_lines=tuple(tally.bad),
        bad_count=tally.bad_count,
        seconds=time.perf_counter() - started,
        stopped_at=tally.stopped_at,
    )


def _stopped(batch: Batch[Any], tally: _Tally, e: Unavailable) -> Unavailable:
    """``e`` again, naming the batch it stopped the import in and what was written before it."""
    first = batch.first_line()
    return Unavailable(
        f"import stopped in the batch of lines {first}-{batch.last_line} "
        f"({tally.written} records written before line {first}): {e.message}",
        extensions={**e.extensions, "written": tally.written, "first_line_not_done": first},
    )


def parse_line(raw: bytes) -> IncomingRecord | str:
    """One JSON line as an incoming record, or why it cannot be one."""
    obj = decode_line(raw)
    if isinstance(obj, str):
        return obj
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
        id=obj["id"],
        metadata=obj.get("metadata"),
        text=obj.get("text"),
        tenant=obj.get("tenant"),
    )


# -- writing -------------------------------------------------------------------------------------


def _incoming_id(record: IncomingRecord) -> str | None:
    return record.id if isinstance(record.id, str) else None


class _StoreWriter:
    """Writes batches through this process's store: ``validate_records``, then the protocol's
    steps in two parts, SQL ``pending`` and then (``finish``) Milvus and the ``indexed`` mark.

    The SQL transactions of both parts take turns (a lock): SQLite runs one writer at a time,
    and a second one waiting in its busy handler (which sleeps and polls) made the overlapped
    import slower than a sequential one."""

    def __init__(self, store: Store, info: CollectionInfo, *, strict: bool) -> None:
        self._store = store
        self._info = info
        self._strict = strict
        self._sql = asyncio.Lock()

    async def __call__(self, batch: Batch[IncomingRecord]) -> BatchOutcome:
        valid, problems = validate_records(self._info, [r for _, r in batch.records])
        errors = ((p.index or 0, p.message) for p in problems)
        bad, stopped_at = first_bad(record_errors(batch, errors, _incoming_id), strict=self._strict)
        records: list[RecordData] = [
            r for i, r in valid if stopped_at is None or batch.records[i][0] < stopped_at
        ]
        async with self._sql:
            revisions = await self._store.writer.store_pending(self._info, records)

        async def finish() -> None:
            await self._store.writer.push(self._info, records)
            async with self._sql:
                await self._store.writer.mark_indexed(self._info.name, revisions)

        return BatchOutcome(written=len(records), bad=bad, stopped_at=stopped_at, finish=finish)


@dataclass
class _Tally:
    written: int = 0
    lines_read: int = 0
    bad: list[BadLine] = field(default_factory=list)
    bad_count: int = 0
    stopped_at: int | None = None

    def add(self, batch: Batch[Any], outcome: BatchOutcome) -> None:
        self.written += outcome.written
        self.stopped_at = outcome.stopped_at
        self.lines_read = outcome.stopped_at or batch.last_line
        self.bad_count += len(outcome.bad)
        room = MAX_BAD_LINES_KEPT - len(self.bad)
        if room > 0:
            self.bad.extend(outcome.bad[:room])
