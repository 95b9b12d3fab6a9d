"""Typed collections from Python: the client generated from a live server's schema knows the
collection "books"' fields, so a filter or record of the wrong shape fails mypy, not the server.

    ../.venv/bin/python books.py http://127.0.0.1:8000/graphql
"""

from __future__ import annotations

import asyncio
import sys

from books_client import BooksClient, BooksFilter, BooksInput, IntComparison, StringListComparison

BOOKS = [
    BooksInput(id="dune", vector=[1, 0, 0, 0], title="Dune", year=1965, tags=["sf"]),
    BooksInput(id="emma", vector=[0, 1, 0, 0], title="Emma", year=1815, tags=["romance"]),
    BooksInput(id="ubik", vector=[0.9, 0.1, 0, 0], title="Ubik", year=1969, tags=["sf"]),
]


async def modern_science_fiction(client: BooksClient) -> list[str]:
    """Titles of books from 1950 on tagged sf, nearest to Dune's vector first."""
    await client.upsert_books(records=BOOKS)
    where = BooksFilter(year=IntComparison(gte=1950), tags=StringListComparison(contains="sf"))
    found = await client.typed_books(vector=[1, 0, 0, 0], where=where)
    return [hit.record.title or "" for hit in found.books.search.hits if hit.record is not None]


async def main(url: str) -> None:
    async with BooksClient(url=url) as client:
        print(await modern_science_fiction(client))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
