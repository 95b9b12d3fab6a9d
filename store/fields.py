"""Metadata values by declared field type: validation, canonical form, and the Milvus column form.

One place decides what a value of each ``FieldType`` is, so ingestion, the filter compiler and the
Milvus adapter agree:

- canonical (SQL JSON, API output): INT -> int, FLOAT -> float, BOOL -> bool, STRING -> str,
  DATETIME -> ISO 8601 UTC string ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (sorts as text),
  STRING_LIST -> list[str], JSON -> any JSON value.
- Milvus column: DATETIME -> INT64 microseconds since the epoch; the rest as canonical.
  An absent value is stored as the type's zero and listed in the ``_absent`` column, so filters
  never match it (Milvus 2.3 has no nullable fields).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from store.records import FieldType
from store.text import shown, text_problem

DEFAULT_STRING_MAX = 1024
STRING_LIMIT = 65_535
LIST_CAPACITY = 1024
ABSENT_COLUMN = "_absent"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ZERO: dict[FieldType, Any] = {
    FieldType.STRING: "",
    FieldType.INT: 0,
    FieldType.FLOAT: 0.0,
    FieldType.BOOL: False,
    FieldType.DATETIME: 0,
    FieldType.STRING_LIST: [],
    FieldType.JSON: {},
}

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class FieldValueError(ValueError):
    """A value does not fit its declared type; the message says why."""


def parse_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise FieldValueError(f"expected an ISO 8601 date-time, got {value!r}") from None
    else:
        raise FieldValueError(f"expected an ISO 8601 date-time string, got {_kind(value)}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is in year 0 once in UTC
        raise FieldValueError(
            f"date-time {shown(str(value))!r} is out of range once in UTC (years 1 to 9999)"
        ) from None


def format_datetime(dt: datetime) -> str:
    # The year is zero-padded by hand: strftime's %Y is not, for years before 1000.
    utc = dt.astimezone(UTC)
    return f"{utc.year:04d}" + utc.strftime("-%m-%dT%H:%M:%S.%fZ")


def datetime_to_micros(dt: datetime) -> int:
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def canonical(ftype: FieldType, value: Any, *, max_length: int | None = None) -> Any:
    """Check ``value`` against ``ftype`` and return its canonical form, or raise FieldValueError."""
    limit = max_length or DEFAULT_STRING_MAX
    if ftype is FieldType.STRING:
        if not isinstance(value, str):
            raise FieldValueError(f"expected a string, got {_kind(value)}")
        _check_text(value)
        if len(value.encode()) > limit:
            raise FieldValueError(f"string longer than {limit} bytes")
        return value
    if ftype is FieldType.INT:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise FieldValueError(f"expected an integer, got {_kind(value)}")
        if not INT64_MIN <= value <= INT64_MAX:
            raise FieldValueError("integer out of the 64-bit range")
        return value
    if ftype is FieldType.FLOAT:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise FieldValueError(f"expected a number, got {_kind(value)}")
        f = float(value)
        if not math.isfinite(f):
            raise FieldValueError("expected a finite number")
        # -0.0 == 0.0, but Milvus Lite's Arrow filters hash them apart (0.0 in [-0.0] is false).
        return 0.0 if f == 0.0 else f
    if ftype is FieldType.BOOL:
        if not isinstance(value, bool):
            raise FieldValueError(f"expected a boolean, got {_kind(value)}")
        return value
    if ftype is FieldType.DATETIME:
        return format_datetime(parse_datetime(value))
    if ftype is FieldType.STRING_LIST:
        if not isinstance(value, list):
            raise FieldValueError(f"expected a list of strings, got {_kind(value)}")
        if len(value) > LIST_CAPACITY:
            raise FieldValueError(f"list longer than {LIST_CAPACITY} items")
        for item in value:
            if not isinstance(item, str):
                raise FieldValueError(f"expected a list of strings, found {_kind(item)}")
            _check_text(item)
            if len(item.encode()) > limit:
                raise FieldValueError(f"list item longer than {limit} bytes")
        return list(value)
    if ftype is FieldType.JSON:
        _check_json(value)
        return value
    raise FieldValueError(f"unknown field type {ftype}")  # pragma: no cover


def to_milvus(ftype: FieldType, value: Any) -> Any:
    """The Milvus column value for a canonical value (``None`` -> the type's zero)."""
    if value is None:
        return ZERO[ftype]
    if ftype is FieldType.DATETIME:
        return datetime_to_micros(parse_datetime(value))
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise FieldValueError("JSON nested deeper than 32 levels")
    if isinstance(value, str):
        _check_text(value)
        return
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FieldValueError("JSON numbers must be finite")
        return
    if isinstance(value, list):
        for item in value:
            _check_json(item, depth + 1)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise FieldValueError("JSON object keys must be strings")
            _check_text(k)
            _check_json(v, depth + 1)
        return
    raise FieldValueError(f"not a JSON value: {_kind(value)}")


def _check_text(value: str) -> None:
    # store.text's rule: what PostgreSQL text and JSONB cannot hold is refused on every backend.
    if problem := text_problem(value):
        raise FieldValueError(problem)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
