"""Reading a JSON Lines file (plain or gzip, detected by its magic bytes) into batches of parsed
records, with the bookkeeping of line numbers and bad lines (``store.writes.importer``).

Each line is one record, ``{"id", "vector", "metadata", "text", "tenant"}``. A batch never holds
an id twice: it is cut before an id it already holds.
"""

from __future__ import annotations

import gzip
import io
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

KEYS = ("id", "vector", "metadata", "text", "tenant")
# Namespace of the ids given to lines without one: uuid5(IMPORT_NAMESPACE, line).
IMPORT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:vectorql:import-line")

T = TypeVar("T")

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class BadLine:
    """A line that was not written, and why (every reason found, joined by ``; ``)."""

    line: int
    reason: str
    id: str | None = None


@dataclass
class Batch(Generic[T]):
    """Consecutive lines: the parsed records (with their line numbers) and the lines that could
    not be parsed. No two records of a batch have the same id."""

    records: list[tuple[int, T]] = field(default_factory=list)
    unparsed: list[BadLine] = field(default_factory=list)
    last_line: int = 0
    bytes_read: int = 0

    def first_line(self) -> int:
        return self.records[0][0] if self.records else self.last_line


def line_id(raw: bytes) -> str:
    """The id of a line that has none: stable across runs, so re-imports do not duplicate."""
    return str(uuid.uuid5(IMPORT_NAMESPACE, raw.decode()))


def decode_line(raw: bytes) -> dict[str, Any] | str:
    """One JSON line as an object with the keys of ``KEYS`` (``id`` always set: the line's own,
    an integer as a string as GraphQL's ID does, or ``line_id``), or why it cannot be one.
    ``vector`` and ``metadata`` are left as they are; ``text`` and ``tenant`` are checked to be
    strings."""
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
        obj["id"] = line_id(raw)
    elif isinstance(record_id, int) and not isinstance(record_id, bool):
        obj["id"] = str(record_id)
    for name in ("text", "tenant"):
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            return f"{name} must be a string (got {_kind(value)})"
    return obj


def record_errors(
    batch: Batch[T], errors: Iterable[tuple[int, str]], key: Callable[[T], str | None]
) -> list[BadLine]:
    """The bad lines of ``batch`` from (record index in the batch, message) pairs: one per
    record, its messages joined by ``; ``, with the unparsed lines, in line order."""
    reasons: dict[int, list[str]] = {}
    for index, message in errors:
        reasons.setdefault(index, []).append(message)
    bad = list(batch.unparsed)
    for index, messages in reasons.items():
        line_no, record = batch.records[index]
        bad.append(BadLine(line=line_no, reason="; ".join(messages), id=key(record)))
    bad.sort(key=lambda b: b.line)
    return bad


def first_bad(bad: list[BadLine], *, strict: bool) -> tuple[list[BadLine], int | None]:
    """With ``strict``, only the first bad line and the line the import stops at; else as is."""
    if strict and bad:
        return bad[:1], bad[0].line
    return bad, None


class LineReader(Generic[T]):
    """Reads and parses lines into batches of at most ``batch_size`` records (blocking I/O)."""

    def __init__(
        self,
        path: Path,
        *,
        parse: Callable[[bytes], T | str],
        key: Callable[[T], str | None],
        batch_size: int,
        stop_at_bad_line: bool,
    ) -> None:
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
        self._parse = parse
        self._key = key
        self._batch_size = batch_size
        self._stop_at_bad_line = stop_at_bad_line
        self._iter: Iterator[bytes] = iter(self._lines)
        self._carry: tuple[int, T] | None = None
        self._done = False
        self.lines_read = 0

    def next_batch(self) -> Batch[T] | None:
        if self._done:
            return None
        batch: Batch[T] = Batch()
        ids: set[str] = set()
        if self._carry is not None:
            line_no, record = self._carry
            self._carry = None
            self._add(batch, ids, line_no, record)
        while len(batch.records) < self._batch_size:
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
            parsed = self._parse(raw)
            if isinstance(parsed, str):
                batch.unparsed.append(BadLine(line=line_no, reason=parsed))
                if self._stop_at_bad_line:
                    self._done = True
                    break
                continue
            record_id = self._key(parsed)
            if record_id is not None and record_id in ids:
                # One batch must not hold an id twice: this line opens the next batch.
                self._carry = (line_no, parsed)
                break
            self._add(batch, ids, line_no, parsed)
        batch.last_line = self.lines_read
        batch.bytes_read = self._raw.tell()
        if not batch.records and not batch.unparsed and self._done:
            return None
        return batch

    def _add(self, batch: Batch[T], ids: set[str], line_no: int, record: T) -> None:
        batch.records.append((line_no, record))
        record_id = self._key(record)
        if record_id is not None:
            ids.add(record_id)

    def close(self) -> None:
        self._lines.close()
        self._raw.close()


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)
