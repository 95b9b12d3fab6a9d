"""Search cursors: opaque, signed, bound to their query, expiring.

A cursor is ``<payload>.<signature>``, both URL-safe base64: the payload is JSON holding the
keyset (``store.paging.Keyset``), the snapshot time, the expiry and the digest of the query it
was issued for; the signature is HMAC-SHA256 of the payload under a key every process shares
(``store.sql.secrets``, generated once in SQL), so a cursor issued by one API process is good at
another and one changed by a client is refused. The payload is readable (ids and a score the
client has seen anyway); only the server can make one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from store.errors import InvalidInput
from store.paging import Keyset
from store.sql.secrets import shared_secret

# How long a cursor is good for: long enough to read a result list, short enough that a leaked
# one stops working the same day.
CURSOR_TTL = 3600.0
SECRET_NAME = "search-cursor"


@dataclass(frozen=True, slots=True)
class SearchCursor:
    keyset: Keyset
    snapshot: float  # epoch seconds: records written after it are left out of later pages
    expires: float  # epoch seconds
    query: str  # the digest of the query it continues
    # Ids shown so far whose records were written just before the snapshot: their writes may
    # have reached the index only after a page saw their old vectors (resolvers.paging).
    recent: tuple[str, ...] = ()


class CursorSigner:
    """Signs and checks search cursors; the key is read from SQL once per process."""

    def __init__(
        self, *, sessions: async_sessionmaker[AsyncSession], ttl: float = CURSOR_TTL
    ) -> None:
        self._sessions = sessions
        self.ttl = ttl
        self._key: bytes | None = None

    async def _secret(self) -> bytes:
        if self._key is None:
            self._key = await shared_secret(self._sessions, SECRET_NAME)
        return self._key

    async def encode(self, cursor: SearchCursor) -> str:
        payload = json.dumps(
            {
                "r": cursor.keyset.raw,
                "s": list(cursor.keyset.seen),
                "d": cursor.keyset.depth,
                "t": cursor.snapshot,
                "e": cursor.expires,
                "q": cursor.query,
                "w": list(cursor.recent),
            },
            separators=(",", ":"),
        ).encode()
        signature = hmac.new(await self._secret(), payload, hashlib.sha256).digest()
        return f"{_b64(payload)}.{_b64(signature)}"

    async def decode(self, text: str, *, query: str, now: float | None = None) -> SearchCursor:
        """The cursor ``text`` for the query with digest ``query``; ``InvalidInput`` when it was
        not issued here (tampered, truncated, from another deployment), belongs to another query,
        or has expired."""
        payload_b64, dot, signature_b64 = text.partition(".")
        try:
            payload, signature = _unb64(payload_b64), _unb64(signature_b64)
        except (binascii.Error, ValueError):
            payload, signature = b"", b""
        expected = hmac.new(await self._secret(), payload, hashlib.sha256).digest()
        if not dot or not hmac.compare_digest(signature, expected):
            raise InvalidInput(
                "after: not a cursor this server issued (changed or truncated); pass "
                "pageInfo.endCursor as it came"
            )
        fields = json.loads(payload)
        cursor = SearchCursor(
            keyset=Keyset(raw=float(fields["r"]), seen=tuple(fields["s"]), depth=int(fields["d"])),
            snapshot=float(fields["t"]),
            expires=float(fields["e"]),
            query=str(fields["q"]),
            recent=tuple(fields["w"]),
        )
        if not hmac.compare_digest(cursor.query, query):
            raise InvalidInput(
                "after: this cursor belongs to another search; a cursor continues only the "
                "search that returned it (same collection, query, where, tenant, params, "
                "groupBy, consistency and model)"
            )
        if (time.time() if now is None else now) > cursor.expires:
            raise InvalidInput(
                f"after: this cursor expired (cursors last {self.ttl:.0f} s); start again "
                "from the first page"
            )
        return cursor


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
