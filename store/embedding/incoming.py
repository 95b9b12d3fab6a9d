"""Records without a vector get one from their text, with the collection's own model, before
the write protocol starts: a model that fails writes nothing (``atomic``), or fails just the
records it could not embed (their errors carry ``UNAVAILABLE``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from store.embedding.registry import Embedders
from store.errors import Unavailable
from store.records import CollectionInfo, RecordError, UpsertOutcome
from store.text import text_problem
from store.writes.incoming import IncomingRecord
from store.writes.protocol import Writer

NOT_EMBEDDED = "text could not be embedded"


async def embed_incoming(
    embedders: Embedders,
    info: CollectionInfo,
    incoming: Sequence[IncomingRecord],
    *,
    atomic: bool,
) -> tuple[list[IncomingRecord], frozenset[int]]:
    """The records with vectors filled in from text, and the indexes whose embedding failed
    (only with ``atomic=False``; atomic raises ``Unavailable``). A record with neither vector
    nor text, or with text but no embedder for the collection, keeps no vector and says why,
    for validation to report with its index."""
    out = list(incoming)
    wanted = [i for i, r in enumerate(incoming) if r.vector is None and r.vector_error is None]
    if not wanted:
        return out, frozenset()
    served = embedders.for_collection(info)
    to_embed: list[int] = []
    for i in wanted:
        text = incoming[i].text
        if text is None:
            out[i] = dataclasses.replace(out[i], vector_error="record has neither vector nor text")
        elif served is None:
            out[i] = dataclasses.replace(out[i], vector_error=_no_embedder(info))
        elif isinstance(text, str) and text.strip() and text_problem(text) is None:
            to_embed.append(i)
        else:
            # Validation reports what is wrong with the text itself.
            out[i] = dataclasses.replace(out[i], vector_error="no vector, and no text to embed")
    if not to_embed or served is None:
        return out, frozenset()
    try:
        vectors = await served.embed_records([str(incoming[i].text) for i in to_embed])
    except Unavailable as e:
        if atomic:
            raise Unavailable(
                f"{len(to_embed)} records need embedding and {e.message}; nothing was written",
                extensions={**e.extensions, "stored": 0},
            ) from e
        for i in to_embed:
            out[i] = dataclasses.replace(out[i], vector_error=f"{NOT_EMBEDDED}: {e.message}")
        return out, frozenset(to_embed)
    for i, vector in zip(to_embed, vectors, strict=True):
        out[i] = dataclasses.replace(out[i], vector=vector)
    return out, frozenset()


async def upsert_with_text(
    writer: Writer,
    embedders: Embedders,
    info: CollectionInfo,
    incoming: Sequence[IncomingRecord],
    *,
    atomic: bool,
) -> UpsertOutcome:
    """``Writer.upsert`` for records that may carry text in place of a vector."""
    records, failed = await embed_incoming(embedders, info, incoming, atomic=atomic)
    outcome = await writer.upsert(info, records, atomic=atomic)
    if not failed:
        return outcome
    return dataclasses.replace(outcome, errors=tuple(_recoded(e, failed) for e in outcome.errors))


def _recoded(error: RecordError, failed: frozenset[int]) -> RecordError:
    if error.index in failed and error.message.startswith(NOT_EMBEDDED):
        return dataclasses.replace(error, code="UNAVAILABLE")
    return error


def _no_embedder(info: CollectionInfo) -> str:
    model = f"model {info.model.name!r}" if info.model else "no model"
    return f"no vector, and collection {info.name!r} ({model}) has no embedder on this server"
