"""The one analyzer of keyword search: the same terms from record text and from query text, on
every backend (it runs here, not in the database, so SQLite and PostgreSQL index alike).

1. Unicode NFKC, then case folding (``str.casefold``: ``Straße`` and ``STRASSE`` agree).
2. **Words**: maximal runs of alphanumeric characters (``str.isalnum``, any script).
3. **Identifiers**: maximal runs of alphanumerics joined by ``-``, ``_``, ``.`` or ``+``, trimmed
   of joiners at both ends except a trailing ``+`` (``g++``). One made of two or more words is a
   term of its own, besides its words: ``libssl-dev`` gives ``libssl``, ``dev`` and
   ``libssl-dev``; ``python3-requests`` gives ``python3``, ``requests`` and
   ``python3-requests``. A query for the whole identifier matches it exactly (and ranks it
   first: the whole is rarer than its parts); a query for a part finds it too.
4. Terms longer than ``MAX_TERM`` characters are dropped (hashes, base64 blobs).

No stemming and no stop words: exact terms (package names, codes, surnames) are what keyword
search is for, and BM25's idf already discounts common words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

MAX_TERM = 64
JOINERS = "-_.+"
# Word runs, and identifier runs: alphanumerics with joiners inside. ``[^\W_]`` is an
# alphanumeric character (``\w`` minus the underscore).
_WORD = re.compile(r"[^\W_]+")
_IDENTIFIER = re.compile(r"[^\W_]+(?:[-_.+]+[^\W_]+)*\+*")


def terms(text: str) -> list[str]:
    """The terms of ``text`` in order (a term may repeat)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    out: list[str] = []
    for match in _IDENTIFIER.finditer(folded):
        run = match.group()
        words = _WORD.findall(run)
        out.extend(w for w in words if len(w) <= MAX_TERM)
        if (len(words) > 1 or run.endswith("+")) and len(run) <= MAX_TERM:
            out.append(run)
    return out


def term_counts(text: str | None) -> Counter[str]:
    """How often each term occurs in ``text`` (empty for None)."""
    return Counter(terms(text)) if text else Counter()
