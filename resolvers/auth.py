"""Authentication: an API key in, a ``Principal`` out (or ``Unauthenticated``).

The ``Authenticator`` is built once per app. It caches each key's row for ``cache_seconds`` and
remembers the one secret that matched its hash, so a request usually costs no SQL and no scrypt:

- a revoked key stops working within ``cache_seconds`` in every process (the row is re-read);
- hashing a secret not seen before runs in a thread, one hash at a time per process (others
  queue: a secret is never refused for being new, so strangers who know a key id cannot lock
  its owner out; the HTTP gate throttles guessing per client address); concurrent requests with
  the same new secret share one hash, and the last wrong secrets of each key are remembered, so
  repeating one costs no hash;
- ``last_used_at`` is written at most once per ``touch_seconds`` per key and process.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from resolvers.access import Principal
from store import ApiKeys, StoredKey, Unauthenticated, Unavailable, parse_key, secret_matches

VERIFY_CONCURRENCY = 1  # scrypt hashes at once per process: guessing costs at most one core
WRONG_SECRETS = 32  # wrong secrets remembered per key
UNKNOWN_KEY = "unknown or revoked API key"


@dataclass(slots=True)
class _Entry:
    stored: StoredKey
    loaded_at: float
    verified: bytes | None = None  # sha256 of the secret that matched
    wrong: OrderedDict[bytes, None] = field(default_factory=OrderedDict)  # of secrets that did not
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
        self._hashing = asyncio.Semaphore(VERIFY_CONCURRENCY)
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
            if fingerprint in entry.wrong or not await self._verify(
                entry.stored, secret, fingerprint
            ):
                entry.wrong[fingerprint] = None
                while len(entry.wrong) > WRONG_SECRETS:
                    entry.wrong.popitem(last=False)
                raise Unauthenticated(UNKNOWN_KEY)
            entry.verified = fingerprint
        now = self._clock()
        if now - entry.touched_at >= self.touch_seconds:
            entry.touched_at = now
            with contextlib.suppress(Unavailable):  # bookkeeping must not fail a request
                await keys.touch(key_id)
        return Principal.from_key(entry.stored.info)

    def known(self, key: str) -> Principal | None:
        """The caller of ``key`` if this process verified that very secret within
        ``cache_seconds`` (no SQL, no hash); None otherwise."""
        parsed = parse_key(key)
        entry = self._entries.get(parsed[0]) if parsed is not None else None
        if (
            parsed is None
            or entry is None
            or entry.stored.info.revoked
            or self._clock() - entry.loaded_at >= self.cache_seconds
            or entry.verified != hashlib.sha256(parsed[1].encode()).digest()
        ):
            return None
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
            fresh.wrong = entry.wrong
        self._entries[key_id] = fresh
        return fresh

    async def _verify(self, stored: StoredKey, secret: str, fingerprint: bytes) -> bool:
        slot = (stored.info.id, fingerprint)
        pending = self._inflight.get(slot)
        if pending is None:
            pending = asyncio.ensure_future(self._hash(stored, secret))
            self._inflight[slot] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(slot, None))
        return await asyncio.shield(pending)

    async def _hash(self, stored: StoredKey, secret: str) -> bool:
        async with self._hashing:
            return await asyncio.to_thread(secret_matches, stored, secret)
