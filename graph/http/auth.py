"""The HTTP side of authentication: the auth mode, the ``Authorization`` header, the rate limits.

``VECTORQL_AUTH``: ``apikey`` requires ``Authorization: Bearer vq_<id>_<secret>`` on every
request; ``off`` serves everyone as the anonymous caller with full access (local development).
Unset, it is ``off`` on a loopback address and ``apikey`` on any other. Serving on a non-loopback
address with auth off is refused unless ``VECTORQL_ALLOW_INSECURE=1``, and then logged loudly.

With keys on, ``AuthGate`` decides every GraphQL request on its headers alone, before a byte of
its body is read, parsed or walked: a request without a valid key costs a header check (and, for
a key this process has not verified yet, one hash). Refused requests are counted per client
address; past ``VECTORQL_AUTH_FAILURE_BURST`` of them an address gets ``LIMIT_EXCEEDED`` without
its key being looked up or hashed (a secret this process has already verified still passes), which
throttles guessing without ever refusing the right secret from another address.
"""

from __future__ import annotations

import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from graph.http.errors import send_error
from graph.settings import ENV_PREFIX, InsecureSettings, Settings
from resolvers.access import Principal
from resolvers.auth import Authenticator
from resolvers.ratelimit import RateLimiter, retry_after
from store import LimitExceeded, Store, Unauthenticated, Unavailable, VectorqlError

log = logging.getLogger("vectorql.auth")

PRINCIPAL_KEY = "vectorql.principal"  # where the gate leaves the admitted caller in the scope
STATUS = {"UNAUTHENTICATED": 401, "LIMIT_EXCEEDED": 429, "UNAVAILABLE": 503}


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


def authorization_key(authorization: str | None) -> str:
    """The bearer key of the header, or '' when there is none."""
    try:
        return bearer_key(authorization)
    except Unauthenticated:
        return ""


def admitted(scope: Scope) -> Principal:
    """The caller the gate admitted (the anonymous caller with auth off)."""
    principal = scope.get(PRINCIPAL_KEY)
    return principal if isinstance(principal, Principal) else Principal.anonymous()


class Gatekeeper:
    """Built once per app: turns a request's ``Authorization`` header and client address into its
    caller, or into the reason it is refused. Holds the key cache and the token buckets."""

    def __init__(self, settings: Settings) -> None:
        self.mode = settings.auth_mode
        self.authenticator = Authenticator(cache_seconds=settings.key_cache_seconds)
        self.limiter = RateLimiter(
            rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst
        )
        self.refusals = RateLimiter(
            rate=settings.auth_failure_rate, burst=settings.auth_failure_burst
        )

    async def admit(self, store: Store, authorization: str | None, *, client: str) -> Principal:
        """The caller, or raise ``Unauthenticated``, ``LimitExceeded`` or ``Unavailable``."""
        if self.mode == "off":
            return Principal.anonymous()
        throttled = self.refusals.wait(client)
        if throttled is not None:
            # Over the refusal budget: only a secret this process already verified passes (it
            # costs nothing); everything else is refused without a lookup or a hash.
            known = self.authenticator.known(authorization_key(authorization))
            if known is None:
                raise LimitExceeded(
                    f"too many refused requests from {client}; retry later",
                    extensions={"retryAfter": retry_after(throttled)},
                )
            principal = known
        else:
            try:
                principal = await self.authenticator.authenticate(
                    store.keys, bearer_key(authorization)
                )
            except Unauthenticated:
                self.refusals.acquire(client)
                raise
        assert principal.key_id is not None
        wait = self.limiter.acquire(principal.key_id)
        if wait is not None:
            raise LimitExceeded(
                f"rate limit of {self.limiter.rate:g} requests/s (burst {self.limiter.burst}) "
                f"for API key {principal.key_id} exceeded",
                extensions={"retryAfter": retry_after(wait)},
            )
        return principal


class AuthGate:
    """Pure ASGI middleware in front of the GraphQL path: admits or refuses each request on its
    headers, before the body is read. GET without a query string (the GraphiQL page) and CORS
    preflights do no work and pass."""

    def __init__(self, app: ASGIApp, *, gatekeeper: Gatekeeper, path: str) -> None:
        self.app = app
        self.gatekeeper = gatekeeper
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._guarded(scope):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        headers = Headers(scope=scope)
        try:
            scope[PRINCIPAL_KEY] = await self.gatekeeper.admit(
                scope["app"].state.store,
                headers.get("authorization"),
                client=client[0] if client else "unknown",
            )
        except (Unauthenticated, LimitExceeded, Unavailable) as e:
            await self._refuse(send, e)
            return
        await self.app(scope, receive, send)

    def _guarded(self, scope: Scope) -> bool:
        if self.gatekeeper.mode == "off" or scope.get("path", "").rstrip("/") != self.path:
            return False
        method = scope.get("method")
        if method == "OPTIONS":
            return False
        return not (method in ("GET", "HEAD") and not scope.get("query_string"))

    async def _refuse(self, send: Send, error: VectorqlError) -> None:
        headers: list[tuple[bytes, bytes]] = []
        retry = (error.extensions or {}).get("retryAfter")
        if isinstance(retry, int | float):
            headers.append((b"retry-after", str(max(1, round(retry + 0.5))).encode()))
        if error.code == "UNAUTHENTICATED":
            headers.append((b"www-authenticate", b"Bearer"))
        await send_error(
            send,
            status=STATUS.get(error.code, 400),
            message=error.message,
            code=error.code,
            extensions=error.extensions,
            headers=headers,
        )
