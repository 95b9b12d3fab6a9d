"""The one error tree of vectorql.

Every failure that a caller can act on is one of these; ``graph.errors`` maps each class to a
GraphQL ``extensions.code`` once. Anything else that escapes is a bug and is masked as ``INTERNAL``.

    VectorqlError               base; never raised directly
    +-- InvalidInput            BAD_USER_INPUT: the request is wrong (name, dimension, filter, ...);
    |                           ``problems`` lists every problem found (index, id, reason)
    +-- NotFound                NOT_FOUND: a named collection does not exist
    +-- Conflict                CONFLICT: a collection with that name already exists
    +-- Unavailable             UNAVAILABLE: Milvus or SQL did not answer (timeout, refused);
    |                           for writes, the message says whether records are stored
    +-- LimitExceeded           LIMIT_EXCEEDED: a configured limit (batch size, topK, cost, rate)
    +-- Unauthenticated         UNAUTHENTICATED: no key, or an unknown/revoked key
    +-- Forbidden               FORBIDDEN: the key's scope, tenant or collections do not allow it
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input: where it is and why."""

    message: str
    index: int | None = None
    id: str | None = None
    path: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"message": self.message}
        if self.index is not None:
            out["index"] = self.index
        if self.id is not None:
            out["id"] = self.id
        if self.path is not None:
            out["path"] = self.path
        return out


class VectorqlError(Exception):
    """Base of every expected failure. ``code`` is the GraphQL ``extensions.code``."""

    code = "INTERNAL"

    def __init__(self, message: str, *, extensions: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extensions: dict[str, Any] = dict(extensions or {})


class InvalidInput(VectorqlError):
    """The request is malformed or breaks a rule; ``problems`` lists each one found."""

    code = "BAD_USER_INPUT"

    def __init__(
        self,
        message: str,
        *,
        problems: list[Problem] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message, extensions=extensions)
        self.problems = list(problems or [])
        if self.problems:
            self.extensions["problems"] = [p.as_dict() for p in self.problems]

    @classmethod
    def of(cls, problems: list[Problem], *, what: str = "input") -> InvalidInput:
        """One error for several problems, the message naming each of them."""
        if len(problems) == 1:
            return cls(_describe(problems[0]), problems=problems)
        listed = "; ".join(_describe(p) for p in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        return cls(f"{len(problems)} invalid {what}: {listed}{more}", problems=problems)


def _describe(p: Problem) -> str:
    where = []
    if p.index is not None:
        where.append(f"record {p.index}")
    if p.id is not None:
        where.append(f"id {p.id!r}")
    if p.path is not None:
        where.append(p.path)
    return f"{' '.join(where)}: {p.message}" if where else p.message


class NotFound(VectorqlError):
    """A named thing (collection, key) does not exist."""

    code = "NOT_FOUND"


class Conflict(VectorqlError):
    """The thing to create already exists, or a concurrent change won."""

    code = "CONFLICT"


class Unavailable(VectorqlError):
    """A backend (Milvus or SQL) did not answer in time or refused the connection."""

    code = "UNAVAILABLE"


class LimitExceeded(VectorqlError):
    """A configured limit was passed (batch size, topK, cost, rate)."""

    code = "LIMIT_EXCEEDED"


class Unauthenticated(VectorqlError):
    """No API key, or an unknown, malformed or revoked one."""

    code = "UNAUTHENTICATED"


class Forbidden(VectorqlError):
    """The API key does not allow this operation, tenant or collection."""

    code = "FORBIDDEN"
