"""What the store asks of an embedding model: turn texts into vectors, in order."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class Embedder(Protocol):
    """A provider of vectors for text. ``embed`` returns a float32 array of shape
    ``(len(texts), dimension)``, rows in the order of ``texts``; it raises ``Unavailable`` when
    the model cannot answer (down, timeout, wrong answer) and ``InvalidInput`` when it refuses
    an input. It must never block the event loop."""

    @property
    def name(self) -> str: ...

    @property
    def provider(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def max_input(self) -> int | None:
        """The longest input in tokens the model reads (longer text is truncated or refused)."""
        ...

    @property
    def batch_size(self) -> int:
        """Texts per model call that use the model's batch efficiency."""
        ...

    async def load(self) -> None:
        """Get ready to answer (load a model); a no-op for remote providers."""
        ...

    async def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    async def close(self) -> None: ...
