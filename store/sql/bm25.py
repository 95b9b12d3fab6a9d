"""Keyword search: BM25 over the keyword index (``store.sql.postings``), with the filter and the
tenant applied in the same SQL statement, so only rows the caller may see are ranked.

BM25 as Lucene computes it, with k1 = 1.2 and b = 0.75::

    score(d, q) = sum over the terms t of q of
                  qtf(t) * idf(t) * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avglen))
    idf(t) = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

N, avglen and df count the records of the searched tenant (the whole collection when it is not
multi-tenant) that have terms, filter or not (as in Elasticsearch: a filter picks rows, it does
not change the statistics). ``qtf`` is how often the term occurs in the query. idf is computed
here, not in SQL, so both databases multiply by the same numbers; scores are rounded to 1e-9
before ties are broken by id, so SQLite and PostgreSQL (which may sum a record's terms in a
different order) rank alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Double, and_, case, cast, func, literal, literal_column, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.analyzer import term_counts
from store.filters import Filter, to_sql
from store.records import CollectionInfo, RecordState
from store.sql.postings import POSTINGS, STATS
from store.sql.reads import RECORDS
from store.sql.tables import tenant_key

K1 = 1.2
B = 0.75
# Rows read past the page, so that a tie at its edge is broken by id the same way whichever
# order the database summed in.
TIE_MARGIN = 16
ROUND = 9


@dataclass(frozen=True, slots=True)
class KeywordHit:
    id: str
    score: float


@dataclass(frozen=True, slots=True)
class KeywordResult:
    hits: list[KeywordHit]
    matched: int  # rows the caller may see with at least one of the query's terms


def idf(docs: int, df: int) -> float:
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


class KeywordSearcher:
    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def search(
        self,
        info: CollectionInfo,
        query: str,
        *,
        top_k: int,
        offset: int = 0,
        where: Filter | None = None,
        tenant: str | None = None,
    ) -> KeywordResult:
        """The best ``top_k`` rows after ``offset`` by BM25 for ``query``."""
        qtf = term_counts(query)
        if not qtf:
            return KeywordResult([], 0)
        tenant_column = tenant_key(tenant)
        p = POSTINGS.c
        async with self._sessions() as session:
            scope = and_(p.collection == info.name, p.tenant == tenant_column)
            # The query terms' document frequencies and the tenant's statistics, in one
            # statement (the statistics as scalar subqueries on every row).
            mine = and_(STATS.c.collection == info.name, STATS.c.tenant == tenant_column)
            found = (
                await session.execute(
                    select(
                        p.term,
                        func.count(),
                        select(STATS.c.docs).where(mine).scalar_subquery(),
                        select(STATS.c.terms).where(mine).scalar_subquery(),
                    )
                    .where(scope, p.term.in_(list(qtf)))
                    .group_by(p.term)
                )
            ).all()
            if not found or not found[0][2]:
                return KeywordResult([], 0)
            docs, total = int(found[0][2]), int(found[0][3])
            weights = {str(t): qtf[t] * idf(docs, int(df)) for t, df, _, _ in found}
            avglen = total / docs
            # tf * (k1 + 1) / (tf + k1 * (1 - b) + (k1 * b / avglen) * len), constants folded here.
            tf = cast(p.tf, Double)
            saturation = (tf * literal(K1 + 1.0, Double)) / (
                tf
                + literal(K1 * (1.0 - B), Double)
                + literal(K1 * B / avglen, Double) * cast(p.length, Double)
            )
            weight = case(
                {t: literal(w, Double) for t, w in weights.items()}, value=p.term, else_=0.0
            )
            score = func.sum(weight * saturation).label("score")
            if where is None:
                ranked = await self._rank_postings(
                    session, info, tenant_column, score, list(weights), limit=offset + top_k
                )
                return _page(ranked, offset, top_k)
            r = RECORDS.c
            same_record = and_(r.collection == p.collection, r.tenant == p.tenant, r.id == p.id)
            conditions = [
                scope,
                p.term.in_(list(weights)),
                # As on every route: rows whose index write has not landed stay out of search.
                r.state == RecordState.INDEXED.value,
            ]
            if where is not None:
                dialect = session.get_bind().dialect.name
                conditions.append(to_sql(where, fields=info.fields, dialect=dialect))
            rows = (
                await session.execute(
                    select(p.id, score, func.count().over().label("matched"))
                    .select_from(POSTINGS.join(RECORDS, same_record))
                    .where(*conditions)
                    .group_by(_by_record(session))
                    .order_by(score.desc(), p.id)
                    .limit(offset + top_k + TIE_MARGIN)
                )
            ).all()
        return _page([(str(i), float(s), int(m)) for i, s, m in rows], offset, top_k)

    async def _rank_postings(
        self,
        session: AsyncSession,
        info: CollectionInfo,
        tenant_column: str,
        score: Any,
        terms: list[str],
        *,
        limit: int,
    ) -> list[tuple[str, float, int]]:
        """Without a filter: rank on the postings alone, leaving out the rows that are not
        searchable (pending or being deleted, found through the state index) in the same
        statement, instead of joining every posting to its record (docs/measurements.md,
        keyword search). One statement: one snapshot, so a write committing meanwhile cannot
        add postings of a row the exclusion did not see."""
        p, r = POSTINGS.c, RECORDS.c
        hidden = select(r.id).where(
            r.collection == info.name,
            # IN, not !=: SQLite searches the (collection, state) index only for IN
            r.state.in_([RecordState.PENDING.value, RecordState.DELETING.value]),
            r.tenant == tenant_column,
        )
        rows = (
            await session.execute(
                select(p.id, score, func.count().over())
                .where(
                    p.collection == info.name,
                    p.tenant == tenant_column,
                    p.term.in_(terms),
                    p.id.not_in(hidden),
                )
                .group_by(_by_record(session))
                .order_by(score.desc(), p.id)
                .limit(limit + TIE_MARGIN)
            )
        ).all()
        return [(str(i), float(s), int(m)) for i, s, m in rows]


def _by_record(session: AsyncSession) -> Any:
    """GROUP BY the posting's record id. On SQLite as ``+id``: grouping by the bare column makes
    its planner read the whole collection's postings through the (collection, tenant, id) index
    to avoid a sort, instead of the query terms' postings through the primary key (262 ms
    against 0.5 ms for three terms over 613,802 postings: docs/measurements.md)."""
    if session.get_bind().dialect.name == "sqlite":
        return literal_column(f"+{POSTINGS.name}.id")
    return POSTINGS.c.id


def _page(rows: list[tuple[str, float, int]], offset: int, top_k: int) -> KeywordResult:
    matched = rows[0][2] if rows else 0
    ranked = sorted(
        (KeywordHit(i, round(s, ROUND)) for i, s, _ in rows), key=lambda h: (-h.score, h.id)
    )
    return KeywordResult(ranked[offset : offset + top_k], matched)
