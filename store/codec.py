"""On the wire: vectors (JSON lists of numbers or base64 of little-endian float32, to float32)
and JSON bodies."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import numpy as np
import orjson

MAX_DIMENSION = 32_768
FLOAT32_MAX = float(np.finfo(np.float32).max)


class VectorFormatError(ValueError):
    """The value is not a vector; the message says why."""


def parse_vector(value: Any) -> np.ndarray:
    """A 1-D float32 array from a list of numbers or a base64 string; finite values only."""
    if isinstance(value, np.ndarray):
        array = value.astype("<f4", copy=False).reshape(-1)
    elif isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise VectorFormatError("vector is not a list of numbers or valid base64") from None
        if len(raw) % 4:
            raise VectorFormatError(
                f"base64 vector decodes to {len(raw)} bytes, not a multiple of 4 (float32)"
            )
        array = np.frombuffer(raw, dtype="<f4")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float):
                raise VectorFormatError(f"vector[{i}] is not a number: {item!r:.40}")
        try:
            wide = np.asarray(value, dtype=np.float64)
        except (OverflowError, ValueError):
            raise VectorFormatError("vector holds a number out of the float32 range") from None
        with np.errstate(invalid="ignore"):
            too_big = np.abs(wide) > FLOAT32_MAX
        if too_big.any():
            bad = int(np.argmax(too_big))
            raise VectorFormatError(f"vector[{bad}] is out of the float32 range ({wide[bad]:g})")
        array = wide.astype("<f4")
    else:
        raise VectorFormatError("vector must be a list of numbers or a base64 string")
    if array.ndim != 1 or array.size == 0:
        raise VectorFormatError("vector is empty")
    if array.size > MAX_DIMENSION:
        raise VectorFormatError(f"vector longer than {MAX_DIMENSION}")
    finite = np.isfinite(array)
    if not finite.all():
        bad = int(np.argmin(finite))
        raise VectorFormatError(f"vector[{bad}] is not finite ({array[bad]})")
    return array


def to_bytes(vector: np.ndarray) -> bytes:
    return vector.astype("<f4", copy=False).tobytes()


def from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4")


def encode_base64(vector: np.ndarray) -> str:
    return base64.b64encode(to_bytes(vector)).decode()


def dumps_json(value: Any) -> bytes:
    """JSON with orjson (faster than json for metadata and pages of hits); json for
    what orjson refuses (integers beyond 64 bits in free-form metadata)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()
