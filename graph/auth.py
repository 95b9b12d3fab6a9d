"""The HTTP side of authentication: the auth mode, the ``Authorization`` header, the rate limit.

``VECTORQL_AUTH``: ``apikey`` requires ``Authorization: Bearer vq_<id>_<secret>`` on every
request; ``off`` serves everyone as the anonymous caller with full access (local development).
Unset, it is ``off`` on a loopback address and ``apikey`` on any other. Serving on a non-loopback
address with auth off is refused unless ``VECTORQL_ALLOW_INSECURE=1``, and then logged loudly.
"""

from __future__ import annotations

import logging

from graph.settings import ENV_PREFIX, Settings
from resolvers.access import Principal
from resolvers.auth import Authenticator
from resolvers.ratelimit import RateLimiter, retry_after
from store import LimitExceeded, Store, Unauthenticated, VectorqlError

log = logging.getLogger("vectorql.auth")


class InsecureSettings(ValueError):
    """Auth is off on an address others can reach, and that was not explicitly allowed."""


def check_exposure(settings: Settings) -> str | None:
    """Raise ``InsecureSettings`` for auth off on a non-loopback host (unless allowed); return
    the warning to log when it is allowed."""
    if settings.auth_mode != "off" or settings.loopback:
        return None
    if not settings.allow_insecure:
        raise InsecureSettings(
            f"refusing to serve on {settings.host} with {ENV_PREFIX}AUTH=off: anyone who can "
            f"reach it could read, write and delete everything. Use {ENV_PREFIX}AUTH=apikey "
            f"(create keys with `vectorql keys create`), bind to 127.0.0.1, or set "
            f"{ENV_PREFIX}ALLOW_INSECURE=1 if the network in front is trusted."
        )
    return (
        f"authentication is OFF on non-loopback address {settings.host} "
        f"({ENV_PREFIX}ALLOW_INSECURE=1): every client has full access"
    )


def bearer_key(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated("an API key is required: send Authorization: Bearer <key>")
    scheme, _, key = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthenticated("the Authorization header must be: Bearer <key>")
    return key.strip()


class Gatekeeper:
    """Built once per app: turns each request's ``Authorization`` header into its caller, or
    into the reason it is refused. Holds the key cache and the per-key token buckets."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth_mode
        self.authenticator = Authenticator()
        self.limiter = RateLimiter(
            rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )

    async def admit(
        self, store: Store, authorization: str | None
    ) -> tuple[Principal | None, VectorqlError | None]:
        if self.mode == "off":
            return Principal.anonymous(), None
        try:
            principal = await self.authenticator.authenticate(store.keys, bearer_key(authorization))
        except VectorqlError as e:
            return None, e
        assert principal.key_id is not None
        wait = self.limiter.acquire(principal.key_id)
        if wait is not None:
            return None, LimitExceeded(
                f"rate limit of {self.limiter.rate:g} requests/s (burst {self.limiter.burst}) "
                f"for API key {principal.key_id} exceeded",
                extensions={"retryAfter": retry_after(wait)},
            )
        return principal, None
