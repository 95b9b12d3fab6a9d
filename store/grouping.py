"""Group-by: at most ``size`` hits per distinct value of a field, ``groups`` groups ordered by
their best hit.

vectorql groups by itself on every backend: Milvus 2.3 ignores ``group_by_field`` without a word,
and Milvus Lite's native grouping is not used (not shown to equal this on ties and misses). The
index is asked for a pool of candidates ranked as any search is (index, exact or exact-fallback
route); their values come from SQL, the system of record (one statement per 2,000 ids, no
vectors). When the pool ran out before ``groups`` groups each held ``size`` hits while the index
had more, the pool grows (``GROWTH`` times) up to ``WINDOW``; a result still incomplete then is
marked ``short``. Records with no value for the field form one group, value null.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.errors import InvalidInput
from store.filters import Filter
from store.paging import WINDOW
from store.records import CollectionInfo, Consistency, FieldType
from store.search import ScoredHit, Searcher, SearchParams, SearchPlan
from store.sql.values import field_values

# Field types a search can be grouped by: one value per record.
GROUPABLE = frozenset(
    {FieldType.STRING, FieldType.INT, FieldType.FLOAT, FieldType.BOOL, FieldType.DATETIME}
)
# The first pool: enough for most result lists where a few values dominate the top hits.
FIRST_POOL = 64
GROWTH = 4


@dataclass(frozen=True, slots=True)
class HitGroup:
    value: Any  # the field's value (None: records without one)
    hits: list[ScoredHit]


def check_group_field(info: CollectionInfo, field: str) -> None:
    spec = next((f for f in info.fields if f.name == field), None)
    if spec is None:
        declared = ", ".join(f.name for f in info.fields) or "none"
        raise InvalidInput(
            f"groupBy.field {field!r} is not a declared field of {info.name!r} "
            f"(declared: {declared})"
        )
    if not spec.filterable:
        raise InvalidInput(f"groupBy.field {field!r} is not filterable")
    if spec.type not in GROUPABLE:
        raise InvalidInput(
            f"groupBy.field {field!r} is {spec.type.value}; grouping takes one value per "
            f"record ({', '.join(sorted(t.value for t in GROUPABLE))})"
        )


def group_hits(
    hits: Sequence[ScoredHit], values: Mapping[str, Any], *, groups: int, size: int
) -> tuple[list[HitGroup], bool]:
    """Group ``hits`` (best first) by ``values``; hits without an entry (gone from SQL) are left
    out. Returns the first ``groups`` groups and whether each of them is full (``size`` hits)."""
    found: dict[str, HitGroup] = {}
    for h in hits:
        if h.id not in values:
            continue
        value = values[h.id]
        key = json.dumps(value, sort_keys=True, default=str)
        group = found.get(key)
        if group is None:
            if len(found) == groups:
                continue  # a later group: it cannot rank among the first ``groups``
            group = found[key] = HitGroup(value=value, hits=[])
        if len(group.hits) < size:
            group.hits.append(h)
    chosen = list(found.values())
    full = len(chosen) == groups and all(len(g.hits) == size for g in chosen)
    return chosen, full


class Grouper:
    def __init__(self, *, searcher: Searcher, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._searcher = searcher
        self._sessions = sessions

    async def search(
        self,
        info: CollectionInfo,
        vector: np.ndarray,
        *,
        field: str,
        size: int,
        groups: int,
        where: Filter | None = None,
        params: SearchParams = SearchParams(),
        consistency: Consistency = Consistency.SESSION,
        tenant: str | None = None,
        exclude_id: str | None = None,
    ) -> tuple[list[HitGroup], SearchPlan, int]:
        """The first ``groups`` groups, the plan of the last pool asked, and its size."""
        check_group_field(info, field)
        pool = min(WINDOW, max(FIRST_POOL, GROWTH * groups * size))
        values: dict[str, Any] = {}
        while True:
            asked = params
            if params.ef is not None and params.ef < pool:  # a pool is deeper than topK
                asked = dataclasses.replace(params, ef=pool)
            [hits], plan = await self._searcher.search(
                info,
                [vector],
                top_k=pool,
                where=where,
                params=asked,
                consistency=consistency,
                tenant=tenant,
                exclude_id=exclude_id,
            )
            new = [h.id for h in hits if h.id not in values]
            values.update(
                await field_values(
                    self._sessions, collection=info.name, tenant=tenant, ids=new, field=field
                )
            )
            chosen, full = group_hits(hits, values, groups=groups, size=size)
            if full or len(hits) < pool:
                return chosen, plan, pool
            if pool >= WINDOW:
                return chosen, dataclasses.replace(plan, short=True), pool
            pool = min(WINDOW, pool * GROWTH)
