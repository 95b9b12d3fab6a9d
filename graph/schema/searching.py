"""Search inputs and results, records connection."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from graph.schema.enums import Consistency, IndexType
from graph.schema.types import Record
from resolvers.search import Explain as ExplainRecord
from resolvers.search import SearchOutcome
from store import Page, encode_cursor
from store import SearchParams as SearchParamsRecord


@strawberry.input(description="Search parameters; defaults favour recall.")
class SearchParams:
    ef: int | None = strawberry.field(
        default=None,
        description=(
            "HNSW candidate list (>= topK + offset; default max(128, topK + offset), wider with "
            "a filter)."
        ),
    )
    nprobe: int | None = strawberry.field(
        default=None, description="IVF clusters to probe (default max(16, nlist / 4))."
    )
    radius: float | None = strawberry.field(
        default=None,
        description=(
            "Range search. COSINE/IP: the lowest score kept. L2: the largest Euclidean distance."
        ),
    )
    range_filter: float | None = strawberry.field(
        default=None,
        description="Range search. COSINE/IP: the highest score kept. L2: the smallest distance.",
    )

    def to_record(self) -> SearchParamsRecord:
        return SearchParamsRecord(
            ef=self.ef, nprobe=self.nprobe, radius=self.radius, range_filter=self.range_filter
        )


@strawberry.type(description="How a search ran: per-stage times and the plan used.")
class Explain:
    milvus_ms: float
    sql_ms: float
    total_ms: float
    index_type: IndexType
    params: JSON
    consistency: Consistency
    candidates: int = strawberry.field(description="Hits Milvus returned.")
    returned: int = strawberry.field(description="Hits with a SQL record (the ones returned).")
    route: str = strawberry.field(
        description=(
            "index: the vector index answered. exact: a selective filter on an index that is "
            "not exact for one (Milvus Lite), so the matching rows were ranked exactly. "
            "exact-fallback: the index returned fewer hits than the collection has for the "
            "query, so it was answered exactly."
        )
    )
    short: bool = strawberry.field(
        description=(
            "True when fewer hits came back than the collection has for the query and too "
            "many rows match to answer exactly: the hits may be missing some."
        )
    )

    @classmethod
    def from_record(cls, e: ExplainRecord) -> Explain:
        return cls(
            milvus_ms=round(e.milvus_ms, 3),
            sql_ms=round(e.sql_ms, 3),
            total_ms=round(e.total_ms, 3),
            index_type=e.plan.index_type,
            params=JSON(dict(e.plan.params)),
            consistency=e.plan.consistency,
            candidates=e.candidates,
            returned=e.returned,
            route=e.plan.route,
            short=e.plan.short,
        )


@strawberry.type(
    description=(
        "A search hit. score: higher is more similar; distance: lower is more similar. "
        "COSINE: score = cosine similarity, distance = 1 - score. IP: score = inner product, "
        "distance = -score. L2: distance = Euclidean distance, score = 1 / (1 + distance)."
    )
)
class Hit:
    id: strawberry.ID
    score: float
    distance: float
    record: Record | None


@strawberry.type(description="Hits ordered by score, highest first.")
class SearchResult:
    hits: list[Hit]
    took_ms: float = strawberry.field(description="Server time for this search, join included.")
    explain: Explain

    @classmethod
    def from_record(cls, outcome: SearchOutcome) -> SearchResult:
        return cls(
            hits=[
                Hit(
                    id=strawberry.ID(h.id),
                    score=h.score,
                    distance=h.distance,
                    record=Record.from_record(h.record),
                )
                for h in outcome.hits
            ],
            took_ms=round(outcome.took_ms, 3),
            explain=Explain.from_record(outcome.explain),
        )


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class RecordEdge:
    cursor: str
    node: Record


@strawberry.type(description="Records ordered by id, with an opaque keyset cursor.")
class RecordConnection:
    edges: list[RecordEdge]
    page_info: PageInfo
    total_count: int

    @classmethod
    def from_record(cls, page: Page) -> RecordConnection:
        edges = [
            RecordEdge(cursor=encode_cursor(r.id), node=Record.from_record(r)) for r in page.records
        ]
        return cls(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next, end_cursor=edges[-1].cursor if edges else None
            ),
            total_count=page.total,
        )
