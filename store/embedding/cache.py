"""A bounded LRU of query text -> vector, one per embedder: a frontend's repeated queries
(a suggestion list, a page reloaded) skip the model."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class QueryCache:
    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, np.ndarray] = OrderedDict()

    def get(self, text: str) -> np.ndarray | None:
        found = self._entries.get(text)
        if found is not None:
            self._entries.move_to_end(text)
        return found

    def put(self, text: str, vector: np.ndarray) -> None:
        if self._size <= 0:
            return
        vector.setflags(write=False)  # shared by every later hit: nobody may change it
        self._entries[text] = vector
        self._entries.move_to_end(text)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
