"""Search inputs and results, records connection."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from graph.schema.enums import Consistency, Fusion, IndexType
from graph.schema.scalars import ParsedVector, Vector
from graph.schema.types import Record
from resolvers.hybrid import HybridQuery
from resolvers.search import Explain as ExplainRecord
from resolvers.search import Hit as HitRecord
from resolvers.search import SearchOutcome
from store import HitScores as HitScoresRecord
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


@strawberry.input(
    description=(
        "A hybrid search: BM25 over record text (query) fused with vector search (vector, or "
        "query embedded with the collection's own model). Filters, tenant and model apply to "
        "both sides before fusion."
    )
)
class HybridInput:
    query: str = strawberry.field(description="Keyword query; also embedded when vector is absent.")
    vector: Vector | None = strawberry.field(
        default=None, description="The vector side's query; absent: query embedded."
    )
    alpha: float | None = strawberry.field(
        default=0.5,
        description="Weight of the vector side, 0..1: 1 is pure vector, 0 keyword (null: 0.5).",
    )
    fusion: Fusion | None = strawberry.field(
        default=Fusion.RRF, description="How the sides are fused (null: RRF)."
    )

    def to_query(self) -> HybridQuery:
        parsed = self.vector
        if parsed is not None and not isinstance(parsed, ParsedVector):  # pragma: no cover
            parsed = ParsedVector(None, "vector could not be parsed")
        return HybridQuery(
            query=self.query,
            vector=parsed.array if parsed is not None else None,
            vector_error=parsed.error if parsed is not None else None,
            alpha=0.5 if self.alpha is None else self.alpha,
            fusion=self.fusion or Fusion.RRF,
        )


@strawberry.type(
    description=(
        "Each side's score and rank (from 1) in a keyword or hybrid search; null where that side "
        "did not find the hit. vector: the vector search's score; keyword: the BM25 score."
    )
)
class HitScores:
    vector: float | None
    keyword: float | None
    vector_rank: int | None
    keyword_rank: int | None

    @classmethod
    def from_record(cls, s: HitScoresRecord) -> HitScores:
        return cls(
            vector=s.vector,
            keyword=s.keyword,
            vector_rank=s.vector_rank,
            keyword_rank=s.keyword_rank,
        )


@strawberry.type(description="How a search ran: per-stage times and the plan used.")
class Explain:
    milvus_ms: float = strawberry.field(description="The vector side's time (0: none ran).")
    sql_ms: float
    total_ms: float
    index_type: IndexType
    params: JSON
    consistency: Consistency
    candidates: int = strawberry.field(
        description="Hits Milvus returned; keyword and hybrid searches: hits ranked here."
    )
    returned: int = strawberry.field(description="Hits with a SQL record (the ones returned).")
    route: str = strawberry.field(
        description=(
            "index: the vector index answered. exact: a selective filter on an index that is "
            "not exact for one (Milvus Lite), so the matching rows were ranked exactly. "
            "exact-fallback: the index returned fewer hits than the collection has for the "
            "query, so it was answered exactly. keyword: BM25 in SQL (a hybrid search shows "
            "its vector side's route)."
        )
    )
    short: bool = strawberry.field(
        description=(
            "True when fewer hits came back than the collection has for the query and too "
            "many rows match to answer exactly: the hits may be missing some."
        )
    )
    keyword_ms: float | None = strawberry.field(
        default=None, description="Keyword and hybrid searches: the keyword side's time."
    )
    keyword_candidates: int | None = strawberry.field(
        default=None,
        description=(
            "Keyword and hybrid searches: records the caller may see with a query term "
            "(0: none, e.g. no text indexed)."
        ),
    )
    vector_candidates: int | None = strawberry.field(
        default=None, description="Hybrid searches: the vector side's candidates."
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
            keyword_ms=round(e.keyword.ms, 3) if e.keyword else None,
            keyword_candidates=e.keyword.candidates if e.keyword else None,
            vector_candidates=e.vector.candidates if e.vector else None,
        )


@strawberry.type(
    description=(
        "A search hit. score: higher is more similar; distance: lower is more similar. "
        "COSINE: score = cosine similarity, distance = 1 - score. IP: score = inner product, "
        "distance = -score. L2: distance = Euclidean distance, score = 1 / (1 + distance). "
        "Keyword search: score = BM25, hybrid: the fused score; distance = -score."
    )
)
class Hit:
    id: strawberry.ID
    score: float
    distance: float
    record: Record | None
    scores: HitScores | None = strawberry.field(
        default=None, description="Keyword and hybrid searches: each side's score and rank."
    )


@strawberry.type(description="The hits of one value of the groupBy field, best first.")
class HitGroup:
    value: JSON | None = strawberry.field(
        description="The field's value (null: records without one)."
    )
    hits: list[Hit]


@strawberry.type(description="Hits ordered by score, highest first.")
class SearchResult:
    hits: list[Hit] = strawberry.field(
        description="With groupBy: every group's hits, groups in the order of their best hit."
    )
    groups: list[HitGroup] | None = strawberry.field(
        description=(
            "With groupBy: topK groups of at most groupBy.size hits, in the order of their "
            "best hit. Null without groupBy."
        )
    )
    page_info: PageInfo = strawberry.field(
        description=(
            "endCursor, passed as after, gives the next topK hits in score order; none is shown "
            "twice, and records written after the first page are left out of later ones. "
            "hasNextPage is true on a full page (the next may be empty). No cursor with offset "
            "or groupBy."
        )
    )
    took_ms: float = strawberry.field(description="Server time for this search, join included.")
    explain: Explain

    @classmethod
    def from_record(cls, outcome: SearchOutcome) -> SearchResult:
        return cls(
            hits=[_hit(h) for h in outcome.hits],
            groups=(
                [
                    HitGroup(value=JSON(g.value), hits=[_hit(h) for h in g.hits])
                    for g in outcome.groups
                ]
                if outcome.groups is not None
                else None
            ),
            page_info=PageInfo(
                has_next_page=outcome.page_info.has_next_page,
                end_cursor=outcome.page_info.end_cursor,
            ),
            took_ms=round(outcome.took_ms, 3),
            explain=Explain.from_record(outcome.explain),
        )


def _hit(h: HitRecord) -> Hit:
    return Hit(
        id=strawberry.ID(h.id),
        score=h.score,
        distance=h.distance,
        record=Record.from_record(h.record),
        scores=HitScores.from_record(h.scores) if h.scores else None,
    )


@strawberry.type(description="Where a list goes on: pass endCursor as after for the next page.")
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
