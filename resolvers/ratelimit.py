"""An in-process token bucket per key: ``rate`` tokens a second, up to ``burst`` in reserve.

Each process keeps its own buckets (the API keeps no shared state), so with N workers or replicas a
key gets up to N times the rate; a load balancer or gateway is the place for a global limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

# Past this many buckets, full ones (idle keys) are dropped: they hold nothing a new one lacks.
MAX_BUCKETS = 10_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """``acquire(key)`` takes one token: None when allowed, else the seconds until one is due."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def wait(self, key: str) -> float | None:
        """Like ``acquire`` without taking the token: None while one is there."""
        if not self.enabled:
            return None
        bucket = self._buckets.get(key)
        if bucket is None:
            return None
        tokens = min(float(self.burst), bucket.tokens + (self._clock() - bucket.at) * self.rate)
        return None if tokens >= 1 else (1 - tokens) / self.rate

    def acquire(self, key: str) -> float | None:
        if not self.enabled:
            return None
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(tokens=float(self.burst), at=now)
        else:
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return None
        return (1 - bucket.tokens) / self.rate

    def _prune(self, now: float) -> None:
        for key, b in list(self._buckets.items()):
            if b.tokens + (now - b.at) * self.rate >= self.burst:
                del self._buckets[key]


def retry_after(seconds: float) -> float:
    """Seconds to wait, rounded up to the millisecond (never 0)."""
    return max(0.001, math.ceil(seconds * 1000) / 1000)
