"""The one rule for strings that come from a client.

- Every client string is valid Unicode: no lone surrogate (``"\\ud800"``, which a JSON body can
  carry as an escape), since UTF-8, PostgreSQL, SQLite's JSON and Milvus cannot hold one; and no
  NUL, since PostgreSQL text and JSONB cannot.
- Identifiers (record ids, tenants, collection, field and model names, cursors) additionally hold
  no control character (Unicode category Cc: C0 controls, DEL, C1 controls). Free text
  (descriptions, record text, metadata values, filter values and patterns) may hold newlines and
  tabs.
- Record ids and tenants are identifiers that are also non-empty and at most ``ID_MAX_LENGTH`` /
  ``TENANT_MAX_LENGTH`` characters (``check_identifier``); the Milvus columns are sized from these.

``graph`` applies it to every argument of every root field (``graph.strings``); the records of an
upsert batch are checked one by one in ``store.writes.incoming.validate_records``, so that one bad
record does not fail the others of a non-atomic batch. Messages never quote a refused value as
is: a lone surrogate cannot be encoded into a response, so values are shown through ``shown``.
"""

from __future__ import annotations

import re
from typing import Any

ID_MAX_LENGTH = 256
TENANT_MAX_LENGTH = 256

# One regex search each, not a unicodedata lookup per character.
_SURROGATES = re.compile("[\ud800-\udfff]")
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f]")


def text_problem(value: str, *, what: str = "text") -> str | None:
    """Why ``value`` is not acceptable free text (``"<what> contains ..."``), or None."""
    if "\x00" in value:
        return f"{what} contains a NUL character"
    if not value.isascii() and _SURROGATES.search(value):
        return f"{what} is not valid Unicode (it holds a lone surrogate)"
    return None


def identifier_problem(value: str, *, what: str = "identifier") -> str | None:
    """Why ``value`` is not an acceptable identifier, or None (emptiness and length are the
    caller's rules)."""
    if not value.isascii() and _SURROGATES.search(value):
        return f"{what} is not valid Unicode (it holds a lone surrogate)"
    if _CONTROLS.search(value):
        return f"{what} contains control characters"
    return None


def check_identifier(value: Any, *, what: str, max_length: int) -> str | None:
    """Why ``value`` is not a usable id or tenant, or None when it is (the identifier rule,
    non-empty, at most ``max_length`` characters)."""
    if not isinstance(value, str):
        return f"{what} must be a string"
    if not value:
        return f"{what} must not be empty"
    if len(value) > max_length:
        return f"{what} longer than {max_length} characters"
    return identifier_problem(value, what=what)


def shown(value: str) -> str:
    """``value`` as it may appear in a response: lone surrogates written as ``\\udxxx``."""
    if value.isascii() or not _SURROGATES.search(value):
        return value
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


__all__ = [
    "ID_MAX_LENGTH",
    "TENANT_MAX_LENGTH",
    "check_identifier",
    "identifier_problem",
    "shown",
    "text_problem",
]
