"""Step 1 of the write protocol: a whole batch of records as clients send them, validated.

Every problem is reported with the record's index and id (design.md section 3): ids (non-empty,
bounded, no control characters, unique per tenant within the batch), vector dimension, metadata
against the declared fields, tenant rules, text size.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from store.errors import Problem
from store.fields import FieldValueError, _check_json, canonical
from store.records import CollectionInfo, RecordData
from store.text import (
    ID_MAX_LENGTH,
    TENANT_MAX_LENGTH,
    check_identifier,
    shown,
    text_problem,
)

TEXT_MAX_BYTES = 1_000_000


@dataclass(frozen=True, slots=True)
class IncomingRecord:
    """A record as a client sent it, before validation. ``vector_error`` says why the vector
    could not be parsed (it is then ``None``)."""

    vector: np.ndarray | None
    id: str | None = None
    metadata: Any = None
    text: str | None = None
    tenant: str | None = None
    vector_error: str | None = None


def validate_records(
    info: CollectionInfo, incoming: Sequence[IncomingRecord]
) -> tuple[list[tuple[int, RecordData]], list[Problem]]:
    """Check every record; returns the valid ones (with their input index) and every problem."""
    valid: list[tuple[int, RecordData]] = []
    problems: list[Problem] = []
    seen: dict[tuple[str | None, str], int] = {}  # (tenant, id): each tenant owns its ids
    for index, rec in enumerate(incoming):
        reasons: list[str] = []
        record_id = rec.id
        if record_id is None:
            record_id = str(uuid.uuid4())
        else:
            reason = check_identifier(record_id, what="id", max_length=ID_MAX_LENGTH)
            if reason:
                reasons.append(reason)
            elif (rec.tenant, record_id) in seen:
                reasons.append(f"duplicate id (also record {seen[rec.tenant, record_id]})")
        if rec.vector is None:
            reasons.append(rec.vector_error or "vector is missing")
        elif rec.vector.shape[0] != info.dimension:
            reasons.append(f"vector dimension is {rec.vector.shape[0]}, expected {info.dimension}")
        metadata, meta_reasons = _check_metadata(info, rec.metadata)
        reasons.extend(meta_reasons)
        if info.multi_tenant:
            if rec.tenant is None:
                reasons.append("tenant is required: the collection is multi-tenant")
            else:
                reason = check_identifier(rec.tenant, what="tenant", max_length=TENANT_MAX_LENGTH)
                if reason:
                    reasons.append(reason)
        elif rec.tenant is not None:
            reasons.append("tenant given, but the collection is not multi-tenant")
        if rec.text is not None:
            if not isinstance(rec.text, str):
                reasons.append("text must be a string")
            elif reason := text_problem(rec.text):
                reasons.append(reason)
            elif len(rec.text.encode()) > TEXT_MAX_BYTES:
                reasons.append(f"text longer than {TEXT_MAX_BYTES} bytes")
        # A refused id may hold a lone surrogate, which no response can encode.
        shown_id = shown(record_id) if rec.id is not None else None
        if reasons:
            problems.extend(Problem(r, index=index, id=shown_id) for r in reasons)
            continue
        seen[rec.tenant, record_id] = index
        assert rec.vector is not None
        valid.append(
            (
                index,
                RecordData(
                    id=record_id,
                    vector=rec.vector.astype("<f4", copy=False).tobytes(),
                    metadata=metadata,
                    text=rec.text,
                    tenant=rec.tenant,
                ),
            )
        )
    return valid, problems


def _check_metadata(info: CollectionInfo, raw: Any) -> tuple[dict[str, Any], list[str]]:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        return {}, ["metadata must be a JSON object"]
    reasons: list[str] = []
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if reason := text_problem(key, what=f"metadata key {shown(key)!r}"):
            reasons.append(reason)
            continue
        spec = info.field(key)
        if spec is None:
            # Undeclared keys are kept in SQL only (returned, not filterable).
            try:
                _check_json(value)
            except FieldValueError as e:
                reasons.append(f"metadata.{key}: {e}")
                continue
            out[key] = value
            continue
        if value is None:
            if spec.required:
                reasons.append(f"metadata.{key} is required")
            continue
        try:
            out[key] = canonical(spec.type, value, max_length=spec.max_length)
        except FieldValueError as e:
            reasons.append(f"metadata.{key} ({spec.type.value}): {e}")
    for spec in info.fields:
        if spec.required and spec.name not in raw:
            reasons.append(f"metadata.{spec.name} is required")
    return out, reasons
