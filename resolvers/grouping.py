"""Grouped search: ``groupBy {field, size}`` (the rule is ``store.grouping``'s); the groups'
hits joined with their records like any search's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from store import HitGroup


class _Identified(Protocol):
    @property
    def id(self) -> str: ...


H = TypeVar("H", bound=_Identified)


@dataclass(frozen=True, slots=True)
class Grouped(Generic[H]):
    value: Any
    hits: list[H]


def joined_groups(groups: Sequence[HitGroup], hits: Sequence[H]) -> list[Grouped[H]]:
    """``groups`` with their hits as joined (``hits``: a hit whose record is gone is dropped,
    and a group left with none with it)."""
    by_id = {h.id: h for h in hits}
    out = []
    for g in groups:
        kept = [by_id[h.id] for h in g.hits if h.id in by_id]
        if kept:
            out.append(Grouped(value=g.value, hits=kept))
    return out
