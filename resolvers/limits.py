"""The API's limits and argument defaults, as the use cases enforce them (the limits built from
settings by ``graph``, whose settings take their defaults from here)."""

from __future__ import annotations

from dataclasses import dataclass

# The schema's argument defaults (graph's root fields and its cost estimate use these).
DEFAULT_TOP_K = 10
DEFAULT_OFFSET = 0
DEFAULT_FIRST = 20


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_size: int = 10_000
    max_top_k: int = 1000
    max_search_batch: int = 100
    max_filter_depth: int = 8
    max_filter_list: int = 1000
    max_page_size: int = 1000
