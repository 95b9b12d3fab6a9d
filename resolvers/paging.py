"""Search pages: ``after`` cursors and ``pageInfo``.

``topK`` is the page size; ``pageInfo.endCursor`` continues the ranking after the page's last
hit (``store.paging``: a keyset on score and id, so no hit is shown twice and none skipped in
one view of the collection). A cursor is bound to its search (``query_digest``): the collection,
the query (vector, text or nearId), where, tenant, params, groupBy, consistency and model; the
page size may change from page to page.

One view: neither Milvus 2.3 (time travel was removed in 2.3) nor Milvus Lite can search as of
an earlier time, so vectorql pins the view itself: a cursor carries the time its first page
started, and later pages leave out every record written since (upserted, updated or re-inserted),
so a record moved by an update is never shown twice. A record deleted since is never shown (the
SQL join drops it). A write reaches SQL (its updated_at) a little before the index, so a record
written within ``SNAPSHOT_MARGIN`` before a page may have been ranked by its old vector: such
records, once shown, are named in the cursor and not shown again. So a later page misses the
records written after the first page (they are not in its view), and shows the rest once.

Keyword and hybrid searches have no range search: page n ranks the n pages and continues after
the cursor's score (``text_window``, ``continue_text``). BM25 scores do not depend on the page,
so those pages are exact; a hybrid (RRF) page widens each side's pool, which can only raise a
hit's fused score, so a hit never repeats but one that rises past the cursor is skipped.
RELATIVE_SCORE is refused (its scores are normalised over each pool).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

import numpy as np

from store import (
    CollectionInfo,
    Consistency,
    InvalidInput,
    Keyset,
    ScoredHit,
    SearchCursor,
    SearchParams,
    Store,
    StoredRecord,
    continue_by_score,
    next_keyset,
    raw_value,
)

# How long before a page a write may have reached SQL but not yet the index (its Milvus write
# and, on a server, Session consistency's view); records written then are remembered once shown.
SNAPSHOT_MARGIN = 5.0
# Such ids a cursor remembers (the latest kept).
MAX_RECENT = 256


@dataclass(frozen=True, slots=True)
class GroupBy:
    field: str
    size: int = 1


@dataclass(frozen=True, slots=True)
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


NO_NEXT_PAGE = PageInfo(has_next_page=False, end_cursor=None)


@dataclass(frozen=True, slots=True)
class Query:
    """What a cursor is bound to: one search's arguments other than the page size."""

    collection: str
    kind: str  # "vector", "text" or "nearId"
    value: str  # the text or id; a vector's SHA-256
    where: Mapping[str, Any] | None
    tenant: str | None
    params: SearchParams
    group_by: GroupBy | None
    consistency: Consistency | None
    model: str | None

    def digest(self) -> str:
        canonical = json.dumps(
            {
                "collection": self.collection,
                "kind": self.kind,
                "value": self.value,
                "where": self.where,
                "tenant": self.tenant,
                "params": asdict(self.params),
                "groupBy": asdict(self.group_by) if self.group_by else None,
                "consistency": self.consistency.value if self.consistency else None,
                "model": self.model,
            },
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def vector_value(vector: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(vector, dtype="<f4").tobytes()).hexdigest()


def check_paging(
    *, after: str | None, offset: int, group_by: GroupBy | None, top_k: int, max_top_k: int
) -> None:
    if after is not None and offset:
        raise InvalidInput("after and offset cannot be combined: a cursor says where to go on")
    if group_by is None:
        return
    if after is not None:
        raise InvalidInput(
            "after cannot be combined with groupBy: a grouped search is one page of topK groups"
        )
    if offset:
        raise InvalidInput("offset cannot be combined with groupBy")
    if group_by.size < 1:
        raise InvalidInput(f"groupBy.size must be at least 1, got {group_by.size}")
    if top_k * group_by.size > max_top_k:
        raise InvalidInput(
            f"topK * groupBy.size is {top_k * group_by.size}; the limit is {max_top_k}",
            extensions={"limit": max_top_k},
        )


def check_text_paging(*, after: str | None, group_by: GroupBy | None, relative_score: bool) -> None:
    """A keyword or hybrid search's paging arguments; ``relative_score``: a hybrid search fused
    by RELATIVE_SCORE."""
    if group_by is not None:
        raise InvalidInput("groupBy takes a vector, nearId or text search")
    if after is not None and relative_score:
        raise InvalidInput(
            "after cannot page a RELATIVE_SCORE hybrid search: its scores are normalised over "
            "each page's candidates, so they move from page to page; use fusion: RRF"
        )


def text_window(top_k: int, cursor: SearchCursor | None) -> int:
    """How many keyword or hybrid hits to rank for a page after ``cursor``: those shown so far
    and the page (their scores come from SQL's BM25 and from ranks, not from a range search)."""
    if cursor is None:
        return top_k
    return cursor.keyset.depth + len(cursor.keyset.seen) + top_k


def continue_text(hits: list[ScoredHit], cursor: SearchCursor | None) -> list[ScoredHit]:
    return hits if cursor is None else continue_by_score(hits, cursor.keyset)


async def open_cursor(store: Store, after: str, query: Query) -> SearchCursor:
    return await store.cursors.decode(after, query=query.digest())


async def page_info(
    store: Store,
    info: CollectionInfo,
    *,
    query: Query,
    hits: Sequence[ScoredHit],
    shown: Sequence[_Joined],
    top_k: int,
    cursor: SearchCursor | None,
    started: float,
    by_score: bool = False,
) -> PageInfo:
    """``hits``: the index's page before the join (a hit whose record is gone still moves the
    cursor on); ``shown``: the hits returned; ``started``: when the search began (epoch s). A
    full page may have a next one; a short page is the last."""
    if len(hits) < top_k or not hits:
        return PageInfo(has_next_page=False, end_cursor=None)
    # by_score: keyword and hybrid rankings, whose keyset is the score itself.
    page = [
        (h.id, h.score if by_score else raw_value(info.metric, h.score, h.distance)) for h in hits
    ]
    keyset: Keyset = next_keyset(page, cursor.keyset if cursor else None)
    snapshot = cursor.snapshot if cursor else started
    recent = [h.id for h in shown if h.record.updated_at.timestamp() > snapshot - SNAPSHOT_MARGIN]
    end = SearchCursor(
        keyset=keyset,
        snapshot=snapshot,
        expires=cursor.expires if cursor else started + store.cursors.ttl,
        query=query.digest(),
        recent=((cursor.recent if cursor else ()) + tuple(recent))[-MAX_RECENT:],
    )
    return PageInfo(has_next_page=True, end_cursor=await store.cursors.encode(end))


class _Joined(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def record(self) -> StoredRecord: ...


J = TypeVar("J", bound=_Joined)


def in_view(hits: list[J], cursor: SearchCursor | None) -> list[J]:
    """The hits of a later page in its view: records not written since the first page, and not
    shown already under an older vector (module docstring)."""
    if cursor is None:
        return hits
    recent = set(cursor.recent)
    return [
        h for h in hits if h.record.updated_at.timestamp() <= cursor.snapshot and h.id not in recent
    ]
