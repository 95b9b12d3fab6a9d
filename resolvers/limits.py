"""The API's limits, as the use cases enforce them (built from settings by ``graph``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch_size: int = 10_000
    max_top_k: int = 1000
    max_search_batch: int = 100
    max_filter_depth: int = 8
    max_filter_list: int = 1000
    max_page_size: int = 1000
