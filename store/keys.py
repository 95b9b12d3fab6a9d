"""API keys: created with a random secret shown once, stored as a salted scrypt hash.

A key reads ``vq_<id>_<secret>``: ``id`` (12 hex digits) finds the row, then the secret is hashed
with the row's salt and compared in constant time. The id is not a secret (``vectorql keys list``
shows it); the 256-bit secret is. Revoking sets ``revoked_at``; rows are never deleted, so a key id
is never reused and its history stays readable.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from store.errors import InvalidInput, NotFound, Problem, Unavailable
from store.sql.tables import ApiKeyRow, utcnow
from store.text import TENANT_MAX_LENGTH, check_identifier
from store.validation import check_name

KEY_PREFIX = "vq"
KEY_RE = re.compile(r"vq_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
# Interactive scrypt parameters: costly to brute-force a leaked table, cheap enough for one
# verification per key and process (docs/measurements.md, "store"; the caller caches outcomes).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
KDF = f"scrypt:{SCRYPT_N}:{SCRYPT_R}:{SCRYPT_P}"
MAX_COLLECTIONS = 100


class Scope(StrEnum):
    """What a key may do; each scope includes the ones before it."""

    READ = "read"  # queries
    WRITE = "write"  # + upsertRecords, deleteRecords
    ADMIN = "admin"  # + createCollection, dropCollection, updateIndex

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, needed: Scope) -> bool:
        return self.rank >= needed.rank


_RANKS = {Scope.READ: 0, Scope.WRITE: 1, Scope.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listed: everything but its secret and hash."""

    id: str
    scope: Scope
    tenant: str | None
    collections: tuple[str, ...] | None
    name: str | None
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A key row with what verification needs."""

    info: KeyInfo
    kdf: str
    salt: bytes
    digest: bytes


@dataclass(frozen=True, slots=True)
class NewKey:
    """A created key: ``secret`` is the full ``vq_<id>_<secret>`` string, shown once."""

    info: KeyInfo
    secret: str


def parse_key(key: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a well-formed key, or None."""
    match = KEY_RE.fullmatch(key)
    return (match.group(1), match.group(2)) if match else None


def hash_secret(secret: str, salt: bytes, kdf: str = KDF) -> bytes:
    name, n, r, p = kdf.split(":")
    if name != "scrypt":
        raise ValueError(f"unknown key derivation {kdf!r}")
    return hashlib.scrypt(
        secret.encode(), salt=salt, n=int(n), r=int(r), p=int(p), maxmem=64 * 1024 * 1024, dklen=32
    )


def secret_matches(stored: StoredKey, secret: str) -> bool:
    """Constant-time comparison of ``secret`` against the stored hash (CPU-bound: a thread)."""
    return hmac.compare_digest(hash_secret(secret, stored.salt, stored.kdf), stored.digest)


def aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)  # SQLite returns naive datetimes


def _to_info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        scope=Scope(row.scope),
        tenant=row.tenant,
        collections=tuple(row.collections) if row.collections is not None else None,
        name=row.name,
        created_at=aware(row.created_at),
        revoked_at=aware(row.revoked_at) if row.revoked_at else None,
        last_used_at=aware(row.last_used_at) if row.last_used_at else None,
    )


def _check_spec(
    scope: str, tenant: str | None, collections: Sequence[str] | None, name: str | None
) -> Scope:
    problems: list[Problem] = []
    try:
        parsed = Scope(scope)
    except ValueError:
        problems.append(Problem(f"scope must be one of read, write, admin; got {scope!r}"))
        parsed = Scope.READ
    if tenant is not None:
        reason = check_identifier(tenant, what="tenant", max_length=TENANT_MAX_LENGTH)
        if reason:
            problems.append(Problem(reason, path="tenant"))
    if collections is not None:
        if not collections:
            problems.append(Problem("collections, when given, must name at least one"))
        if len(collections) > MAX_COLLECTIONS:
            problems.append(Problem(f"at most {MAX_COLLECTIONS} collections per key"))
        problems.extend(p for c in collections if (p := check_name(c)) is not None)
    if name is not None and not 0 < len(name) <= 256:
        problems.append(Problem("name must be 1..256 characters", path="name"))
    if problems:
        raise InvalidInput.of(problems, what="key settings")
    return parsed


class ApiKeys:
    """The key repository. Its reads are by primary key; nothing here is cached."""

    def __init__(self, *, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def create(
        self,
        *,
        scope: str,
        tenant: str | None = None,
        collections: Sequence[str] | None = None,
        name: str | None = None,
    ) -> NewKey:
        parsed = _check_spec(scope, tenant, collections, name)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_bytes(16)
        row = ApiKeyRow(
            id=key_id,
            name=name,
            scope=parsed.value,
            tenant=tenant,
            collections=sorted(set(collections)) if collections is not None else None,
            kdf=KDF,
            salt=salt,
            digest=await asyncio.to_thread(hash_secret, secret, salt),
        )
        async with self._sessions() as session, session.begin():
            session.add(row)
        return NewKey(info=_to_info(row), secret=f"{KEY_PREFIX}_{key_id}_{secret}")

    async def all(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        query = select(ApiKeyRow).order_by(col(ApiKeyRow.created_at), col(ApiKeyRow.id))
        if not include_revoked:
            query = query.where(col(ApiKeyRow.revoked_at).is_(None))
        async with self._sessions() as session:
            return [_to_info(r) for r in (await session.scalars(query)).all()]

    async def get(self, key_id: str) -> StoredKey | None:
        try:
            async with self._sessions() as session:
                row = await session.get(ApiKeyRow, key_id)
                if row is None:
                    return None
                return StoredKey(info=_to_info(row), kdf=row.kdf, salt=row.salt, digest=row.digest)
        except (SQLAlchemyError, OSError) as e:
            raise Unavailable(f"the key store did not answer: {type(e).__name__}") from e

    async def revoke(self, key_id: str) -> KeyInfo:
        """Revoke a key (revoking it again keeps the first time); ``NotFound`` if unknown."""
        async with self._sessions() as session, session.begin():
            row = await session.get(ApiKeyRow, key_id)
            if row is None:
                raise NotFound(f"no API key with id {key_id!r}")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return _to_info(row)

    async def touch(self, key_id: str) -> None:
        """Record a use (best effort: a failure is the caller's to ignore)."""
        try:
            async with self._sessions() as session, session.begin():
                await session.execute(
                    update(ApiKeyRow)
                    .where(col(ApiKeyRow.id) == key_id)
                    .values(last_used_at=utcnow())
                )
        except (SQLAlchemyError, OSError) as e:
            raise Unavailable(f"the key store did not answer: {type(e).__name__}") from e

    async def verify(self, key: str) -> KeyInfo | None:
        """The key's info when ``key`` is well-formed, known, not revoked and its secret matches.

        One SQL read and one scrypt hash (in a thread) per call: a server caches the outcome
        (``resolvers.auth.Authenticator``)."""
        parsed = parse_key(key)
        if parsed is None:
            return None
        stored = await self.get(parsed[0])
        if stored is None or stored.info.revoked:
            return None
        if not await asyncio.to_thread(secret_matches, stored, parsed[1]):
            return None
        return stored.info
