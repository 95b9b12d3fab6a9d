"""Use the generated client: create a collection, upsert records, search with a metadata filter.

    python -m venv .venv && .venv/bin/pip install -r requirements-codegen.txt
    .venv/bin/ariadne-codegen                 # writes ./vectorql_client/ (see pyproject.toml)
    .venv/bin/python demo.py http://127.0.0.1:8000/graphql [collection] [api key]

The example's environment (requirements-codegen.txt) has what the demo and the generated client
need: httpx and pydantic.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import sys
from dataclasses import dataclass

from vectorql_client import (
    CreateCollectionInput,
    FieldInput,
    FieldType,
    Filter,
    GraphQLClientGraphQLMultiError,
    Metric,
    RecordInput,
    VectorqlClient,
)


def base64_vector(values: list[float]) -> str:
    """The compact form of a Vector: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()


@dataclass(frozen=True)
class Found:
    id: str
    score: float
    text: str | None


async def create_if_absent(client: VectorqlClient, collection: str) -> bool:
    """Create the demo collection; False when it already exists (CONFLICT)."""
    fields = [
        FieldInput(name="category", type_=FieldType.STRING),
        FieldInput(name="year", type_=FieldType.INT),
    ]
    try:
        await client.create_collection(
            CreateCollectionInput(name=collection, dimension=4, metric=Metric.COSINE, fields=fields)
        )
    except GraphQLClientGraphQLMultiError as e:
        if any((error.extensions or {}).get("code") == "CONFLICT" for error in e.errors):
            return False
        raise
    return True


async def demo(client: VectorqlClient, collection: str) -> list[Found]:
    await create_if_absent(client, collection)
    written = await client.upsert_records(
        collection,
        [
            RecordInput(
                id="a1",
                vector=[0.1, 0.2, 0.3, 0.4],
                metadata={"category": "news", "year": 2024},
                text="fresh news",
            ),
            RecordInput(
                id="a2",
                vector=base64_vector([0.1, 0.2, 0.3, 0.5]),  # the same kind of value, compact
                metadata={"category": "news", "year": 2019},
                text="old news",
            ),
            RecordInput(
                id="a3",
                vector=[0.4, 0.3, 0.2, 0.1],
                metadata={"category": "sport", "year": 2025},
                text="a match",
            ),
        ],
        atomic=True,
    )
    assert not written.upsert_records.errors, written.upsert_records.errors

    # Python names of GraphQL keywords end in "_": and_, or_, not_, in_, type_.
    news_since_2020 = Filter(
        and_=[Filter(field="category", eq="news"), Filter(field="year", gte=2020)]
    )
    result = await client.search(
        collection=collection, vector=[0.1, 0.2, 0.3, 0.4], top_k=5, where=news_since_2020
    )
    return [
        Found(hit.id, hit.score, hit.record.text if hit.record else None)
        for hit in result.search.hits
    ]


async def main(argv: list[str]) -> None:
    endpoint = argv[1] if len(argv) > 1 else "http://127.0.0.1:8000/graphql"
    collection = argv[2] if len(argv) > 2 else "py_demo"
    headers = {"Authorization": f"Bearer {argv[3]}"} if len(argv) > 3 else None
    async with VectorqlClient(url=endpoint, headers=headers) as client:
        for found in await demo(client, collection):
            print(f"{found.id}\t{found.score:.4f}\t{found.text}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv))
