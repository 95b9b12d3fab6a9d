"""The in-process provider: a sentence-transformers model on CPU.

The only module that imports sentence_transformers (and so torch), and only when the model is
first used: the API starts fast, and code paths that never embed never load torch. Inference runs
on one worker thread of its own, never on the event loop; calls queue there one at a time, since
two concurrent forward passes on a 2-core machine only slow each other down.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from store.embedding.spec import EmbedderSpec, FromSpec
from store.errors import Unavailable


class SentenceTransformerEmbedder(FromSpec):
    """Loads ``spec.path`` (or ``spec.package``'s ``get_model_path()``) on first use, from local
    files only: nothing is downloaded at run time."""

    provider = "sentence-transformers"

    def __init__(self, spec: EmbedderSpec) -> None:
        super().__init__(spec)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"embed-{spec.name}")
        self._model: Any = None
        self._load_lock = threading.Lock()

    async def load(self) -> None:
        """Load the model now (start-up warms it so the first search does not pay for it)."""
        await asyncio.get_running_loop().run_in_executor(self._executor, self._loaded)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._encode, list(texts))

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _encode(self, texts: list[str]) -> np.ndarray:
        model = self._loaded()
        vectors = model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def _loaded(self) -> Any:
        with self._load_lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        # The hub client must never reach out: the model is a local directory.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise Unavailable(
                f"embedder {self.name!r}: sentence-transformers is not installed "
                "(pip install 'vectorql[embed]')"
            ) from e
        path = self._spec.path
        if path is None:
            assert self._spec.package is not None
            try:
                package = importlib.import_module(self._spec.package)
            except ImportError as e:
                raise Unavailable(
                    f"embedder {self.name!r}: model package {self._spec.package!r} is not installed"
                ) from e
            path = str(package.get_model_path())
        try:
            model = SentenceTransformer(path, device="cpu", local_files_only=True)
        except (OSError, ValueError) as e:
            raise Unavailable(f"embedder {self.name!r}: cannot load {path!r}: {e}") from e
        found = model.get_embedding_dimension()
        if found != self.dimension:
            raise Unavailable(
                f"embedder {self.name!r}: the model makes {found}-d vectors, configured "
                f"dimension is {self.dimension}"
            )
        if self._spec.max_input is not None:
            # Longer text is truncated to this many tokens (the model's own limit at most).
            own = model.max_seq_length or self._spec.max_input
            model.max_seq_length = min(own, self._spec.max_input)
        return model
