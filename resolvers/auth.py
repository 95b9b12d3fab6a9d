"""Authentication: an API key in, a ``Principal`` out (or ``Unauthenticated``).

The ``Authenticator`` is built once per app. It caches each key's row for ``cache_seconds`` and
remembers the one secret that matched its hash, so a request usually costs no SQL and no scrypt:

- a revoked key stops working within ``cache_seconds`` in every process (the row is re-read);
- hashing a secret not seen before runs in a thread, at most ``VERIFY_RATE`` a second per key and
  ``VERIFY_RATE_TOTAL`` in all, so guessing at secrets cannot eat the CPU; concurrent requests with
  the same new key share one hash;
- ``last_used_at`` is written at most once per ``touch_seconds`` per key and process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from resolvers.access import Principal
from resolvers.ratelimit import RateLimiter, retry_after
from store.errors import LimitExceeded, Unauthenticated, Unavailable
from store.keys import ApiKeys, StoredKey, parse_key, secret_matches

VERIFY_RATE, VERIFY_BURST = 1.0, 5
VERIFY_RATE_TOTAL, VERIFY_BURST_TOTAL = 10.0, 20
UNKNOWN_KEY = "unknown or revoked API key"


@dataclass(slots=True)
class _Entry:
    stored: StoredKey
    loaded_at: float
    verified: bytes | None = None  # sha256 of the secret that matched
    touched_at: float = float("-inf")


class Authenticator:
    def __init__(
        self,
        *,
        cache_seconds: float = 2.0,
        touch_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache_seconds = cache_seconds
        self.touch_seconds = touch_seconds
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._per_key = RateLimiter(rate=VERIFY_RATE, burst=VERIFY_BURST, clock=clock)
        self._total = RateLimiter(rate=VERIFY_RATE_TOTAL, burst=VERIFY_BURST_TOTAL, clock=clock)
        self._inflight: dict[tuple[str, bytes], asyncio.Future[bool]] = {}

    async def authenticate(self, keys: ApiKeys, key: str) -> Principal:
        parsed = parse_key(key)
        if parsed is None:
            raise Unauthenticated("malformed API key: expected vq_<id>_<secret>")
        key_id, secret = parsed
        entry = await self._entry(keys, key_id)
        if entry.stored.info.revoked:
            raise Unauthenticated(UNKNOWN_KEY)
        fingerprint = hashlib.sha256(secret.encode()).digest()
        if entry.verified != fingerprint:
            if not await self._verify(entry.stored, secret, fingerprint):
                raise Unauthenticated(UNKNOWN_KEY)
            entry.verified = fingerprint
        now = self._clock()
        if now - entry.touched_at >= self.touch_seconds:
            entry.touched_at = now
            with contextlib.suppress(Unavailable):  # bookkeeping must not fail a request
                await keys.touch(key_id)
        return Principal.from_key(entry.stored.info)

    async def _entry(self, keys: ApiKeys, key_id: str) -> _Entry:
        now = self._clock()
        entry = self._entries.get(key_id)
        if entry is not None and now - entry.loaded_at < self.cache_seconds:
            return entry
        stored = await keys.get(key_id)
        if stored is None:
            self._entries.pop(key_id, None)
            raise Unauthenticated(UNKNOWN_KEY)
        fresh = _Entry(stored=stored, loaded_at=now)
        if entry is not None and entry.stored.digest == stored.digest:
            fresh.verified, fresh.touched_at = entry.verified, entry.touched_at
        self._entries[key_id] = fresh
        return fresh

    async def _verify(self, stored: StoredKey, secret: str, fingerprint: bytes) -> bool:
        slot = (stored.info.id, fingerprint)
        pending = self._inflight.get(slot)
        if pending is None:
            wait = self._per_key.acquire(stored.info.id) or self._total.acquire("all")
            if wait is not None:
                raise LimitExceeded(
                    "too many new secrets tried for this key; retry later",
                    extensions={"retryAfter": retry_after(wait)},
                )
            pending = asyncio.ensure_future(asyncio.to_thread(secret_matches, stored, secret))
            self._inflight[slot] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(slot, None))
        return await asyncio.shield(pending)
