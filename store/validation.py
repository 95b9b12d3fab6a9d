"""Validation of collection definitions: names, dimensions, fields and index parameters.

Every check collects its problems and raises one ``InvalidInput`` naming each of them, so a client
fixes a definition in one round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from store.errors import InvalidInput, Problem
from store.fields import STRING_LIMIT
from store.records import (
    CollectionSpec,
    FieldSpec,
    FieldType,
    IndexSpec,
    IndexType,
    Metric,
    ModelSpec,
)

NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")
MIN_DIMENSION = 2
MAX_DIMENSION = 32_768
MAX_FIELDS = 64
MAX_SHARDS = 16
RESERVED_FIELDS = frozenset({"id", "vector", "tenant"})
# Words of Milvus's expression grammar: a field with such a name would break filter expressions.
MILVUS_KEYWORDS = frozenset(
    {
        "and", "or", "not", "in", "like", "true", "false", "null", "is", "exists", "text_match",
        "json_contains", "json_contains_all", "json_contains_any", "array_contains",
        "array_contains_all", "array_contains_any", "array_length", "phrase_match",
        "random_sample", "count",
    }
)  # fmt: skip

# Allowed index parameters per type: name -> (min, max, default). None default = optional.
INDEX_PARAMS: dict[IndexType, dict[str, tuple[int, int, int | None]]] = {
    IndexType.HNSW: {"M": (2, 2048, 16), "efConstruction": (8, 4096, 256)},
    IndexType.IVF_FLAT: {"nlist": (1, 65_536, 128)},
    IndexType.IVF_SQ8: {"nlist": (1, 65_536, 128)},
    IndexType.IVF_PQ: {"nlist": (1, 65_536, 128), "m": (1, 65_536, None), "nbits": (1, 16, 8)},
    IndexType.FLAT: {},
    IndexType.AUTOINDEX: {},
}


def check_name(name: str, *, what: str = "collection name") -> Problem | None:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return Problem(
            f"invalid {what} {name!r}: must match [A-Za-z][A-Za-z0-9_]{{0,62}}",
            path="name",
        )
    return None


def validate_name(name: str) -> str:
    problem = check_name(name)
    if problem:
        raise InvalidInput(problem.message, problems=[problem])
    return name


def validate_index(
    index: IndexSpec, *, dimension: int, supported: Iterable[IndexType] | None = None
) -> IndexSpec:
    """Check the parameters of ``index`` for its type and fill in defaults."""
    problems: list[Problem] = []
    allowed = INDEX_PARAMS[index.type]
    if supported is not None and index.type not in set(supported):
        names = ", ".join(sorted(t.value for t in supported))
        problems.append(
            Problem(
                f"index type {index.type.value} is not supported by this Milvus backend "
                f"(supported: {names})",
                path="index.type",
            )
        )
    params: dict[str, Any] = {}
    raw = index.params or {}
    if not isinstance(raw, dict):
        raise InvalidInput("index.params must be a JSON object", problems=[])
    for key, value in raw.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            problems.append(
                Problem(
                    f"unknown parameter {key!r} for {index.type.value} (allowed: {known})",
                    path=f"index.params.{key}",
                )
            )
            continue
        lo, hi, _ = allowed[key]
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            problems.append(
                Problem(
                    f"{key} must be an integer in {lo}..{hi}, got {value!r}",
                    path=f"index.params.{key}",
                )
            )
            continue
        params[key] = value
    for key, (_, _, default) in allowed.items():
        if key not in params and default is not None:
            params[key] = default
    if index.type is IndexType.IVF_PQ and "m" not in raw:
        problems.append(Problem("IVF_PQ needs parameter m (a divisor of the dimension)"))
    if index.type is IndexType.IVF_PQ and "m" in params and dimension % params["m"] != 0:
        problems.append(
            Problem(
                f"IVF_PQ m={params['m']} must divide the dimension {dimension}",
                path="index.params.m",
            )
        )
    if problems:
        raise InvalidInput.of(problems, what="index settings")
    return IndexSpec(type=index.type, params=params)


def validate_fields(fields: Iterable[FieldSpec]) -> tuple[FieldSpec, ...]:
    problems: list[Problem] = []
    seen: set[str] = set()
    out: list[FieldSpec] = []
    for i, f in enumerate(fields):
        path = f"fields[{i}]"
        problem = check_name(f.name, what="field name")
        if problem:
            problems.append(Problem(problem.message, path=f"{path}.name"))
            continue
        lowered = f.name.lower()
        if lowered in RESERVED_FIELDS:
            problems.append(
                Problem(
                    f"field name {f.name!r} is reserved (id, vector and tenant are built in)",
                    path=f"{path}.name",
                )
            )
            continue
        if lowered in MILVUS_KEYWORDS:
            problems.append(
                Problem(f"field name {f.name!r} is a reserved word", path=f"{path}.name")
            )
            continue
        if f.name in seen:
            problems.append(Problem(f"duplicate field name {f.name!r}", path=f"{path}.name"))
            continue
        seen.add(f.name)
        max_length = f.max_length
        if f.type in (FieldType.STRING, FieldType.STRING_LIST):
            if max_length is not None and not 1 <= max_length <= STRING_LIMIT:
                problems.append(
                    Problem(
                        f"maxLength must be in 1..{STRING_LIMIT}, got {max_length}",
                        path=f"{path}.maxLength",
                    )
                )
                continue
        elif max_length is not None:
            problems.append(
                Problem(
                    f"maxLength applies to STRING and STRING_LIST fields, not {f.type.value}",
                    path=f"{path}.maxLength",
                )
            )
            continue
        out.append(f)
    if len(out) > MAX_FIELDS:
        problems.append(Problem(f"at most {MAX_FIELDS} fields, got {len(out)}", path="fields"))
    if problems:
        raise InvalidInput.of(problems, what="fields")
    return tuple(out)


def validate_collection(
    spec: CollectionSpec, *, supported_indexes: Iterable[IndexType] | None = None
) -> CollectionSpec:
    """Check a whole collection definition; return it with index defaults filled in."""
    problems: list[Problem] = []
    name_problem = check_name(spec.name)
    if name_problem:
        problems.append(name_problem)
    dimension = spec.dimension
    dimension_ok = isinstance(dimension, int) and MIN_DIMENSION <= dimension <= MAX_DIMENSION
    if dimension is None:
        problems.append(
            Problem(
                "dimension is required unless model.name names an embedder of this server",
                path="dimension",
            )
        )
    elif not dimension_ok:
        problems.append(
            Problem(
                f"dimension must be in {MIN_DIMENSION}..{MAX_DIMENSION}, got {spec.dimension}",
                path="dimension",
            )
        )
    if not 1 <= spec.shards <= MAX_SHARDS:
        problems.append(Problem(f"shards must be in 1..{MAX_SHARDS}", path="shards"))
    if spec.model is not None:
        problems.extend(_model_problems(spec.model))
    fields: tuple[FieldSpec, ...] = ()
    index = spec.index
    try:
        fields = validate_fields(spec.fields)
    except InvalidInput as e:
        problems.extend(e.problems)
    if dimension_ok and dimension is not None:
        try:
            index = validate_index(spec.index, dimension=dimension, supported=supported_indexes)
        except InvalidInput as e:
            problems.extend(e.problems)
    if problems:
        raise InvalidInput.of(problems, what="collection settings")
    return CollectionSpec(
        name=spec.name,
        dimension=spec.dimension,
        metric=Metric(spec.metric),
        description=spec.description,
        model=spec.model,
        fields=fields,
        index=index,
        multi_tenant=spec.multi_tenant,
        shards=spec.shards,
    )


def _model_problems(model: ModelSpec) -> list[Problem]:
    problems = []
    if not model.name or len(model.name) > 256:
        problems.append(Problem("model.name must be 1..256 characters", path="model.name"))
    if model.version is not None and len(model.version) > 256:
        problems.append(Problem("model.version must be at most 256 characters", path="model"))
    return problems
