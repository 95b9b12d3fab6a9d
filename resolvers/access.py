"""Who is calling and what they may do: the ``Principal`` and the authorization rules.

Every use case takes the caller's ``Principal`` and checks it here before touching the store:

- **Scope** per operation: ``read`` for queries, ``write`` adds ``upsertRecords`` and
  ``deleteRecords``, ``admin`` adds collection DDL. Too low a scope is ``FORBIDDEN``.
- **Collections**: a key bound to collections sees only those. The ``collections`` list leaves
  the others out; naming another one is ``FORBIDDEN``, decided from the key alone (the name is not
  looked up, so the answer says nothing about which collections exist).
- **Tenant**: a key bound to a tenant works only in multi-tenant collections and only within its
  tenant, which the server applies to every read, search, count, write and delete. Naming another
  tenant or a collection that is not multi-tenant is ``FORBIDDEN``; a record without a tenant
  gets the key's. Collection DDL changes every tenant's data, so it needs an admin key that is
  not bound to a tenant.
- **Ids belong to their tenant**: in a multi-tenant collection a record is (tenant, id), so the
  same id in two tenants is two records (``store.tables.RecordRow``). Every operation runs in
  one tenant (``tenant_for``; each record of an upsert names its own), and no operation that
  takes an id (``record``, ``search(nearId:)``, ``upsertRecords``, ``deleteRecords`` by ids or
  by filter, ``records`` cursors and ``where`` on ``id``) can tell another tenant's id from an
  unused one: writing one creates a record of the caller's tenant, reading or deleting one finds
  nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from store import CollectionInfo, Forbidden, IncomingRecord, InvalidInput, KeyInfo, Scope


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of one request. ``key_id`` None: anonymous, with auth off (full access)."""

    scope: Scope
    key_id: str | None = None
    tenant: str | None = None
    collections: frozenset[str] | None = None

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(scope=Scope.ADMIN)

    @classmethod
    def from_key(cls, key: KeyInfo) -> Principal:
        return cls(
            scope=key.scope,
            key_id=key.id,
            tenant=key.tenant,
            collections=frozenset(key.collections) if key.collections is not None else None,
        )

    def describe(self) -> str:
        return f"API key {self.key_id}" if self.key_id else "the anonymous caller"


def require(principal: Principal, scope: Scope, *, action: str) -> None:
    if not principal.scope.allows(scope):
        raise Forbidden(
            f"{action} needs scope {scope.value}; {principal.describe()} has "
            f"{principal.scope.value}",
            extensions={"needed": scope.value, "scope": principal.scope.value},
        )


def require_ddl(principal: Principal, name: str, *, action: str) -> None:
    """Collection DDL: scope admin, not bound to a tenant, and the name within the key's."""
    require(principal, Scope.ADMIN, action=action)
    if principal.tenant is not None:
        raise Forbidden(f"{action} changes every tenant's data: a tenant-bound key cannot run it")
    check_collection(principal, name)


def check_collection(principal: Principal, name: str) -> None:
    if principal.collections is not None and name not in principal.collections:
        raise Forbidden(f"{principal.describe()} is not allowed collection {name!r}")


def can_see(principal: Principal, info: CollectionInfo) -> bool:
    """Whether ``info`` belongs in this caller's ``collections`` list."""
    if principal.collections is not None and info.name not in principal.collections:
        return False
    return principal.tenant is None or info.multi_tenant


def check_tenant(info: CollectionInfo, tenant: str | None) -> None:
    """Multi-tenant collections need a tenant on every read and write; others refuse one."""
    if info.multi_tenant and tenant is None:
        raise InvalidInput(f"collection {info.name!r} is multi-tenant: tenant is required")
    if not info.multi_tenant and tenant is not None:
        raise InvalidInput(f"collection {info.name!r} is not multi-tenant: tenant must be omitted")


def tenant_for(principal: Principal, info: CollectionInfo, requested: str | None) -> str | None:
    """The tenant a request on ``info`` runs in: the key's, when it is bound to one."""
    check_collection(principal, info.name)
    if principal.tenant is None:
        check_tenant(info, requested)
        return requested
    if not info.multi_tenant:
        raise Forbidden(
            f"{principal.describe()} is bound to a tenant; collection {info.name!r} is not "
            "multi-tenant"
        )
    if requested is not None and requested != principal.tenant:
        raise Forbidden(f"{principal.describe()} is bound to another tenant than {requested!r}")
    return principal.tenant


def records_for(
    principal: Principal, info: CollectionInfo, records: Sequence[IncomingRecord]
) -> list[IncomingRecord]:
    """Records to write: with a tenant-bound key, each gets the key's tenant (or names it)."""
    tenant = principal.tenant
    if tenant is None:
        check_collection(principal, info.name)
        return list(records)
    tenant_for(principal, info, None)
    others = sorted({r.tenant for r in records if r.tenant is not None and r.tenant != tenant})
    if others:
        raise Forbidden(
            f"{principal.describe()} is bound to another tenant than "
            f"{', '.join(repr(t) for t in others[:5])}"
        )
    return [r if r.tenant == tenant else dataclasses.replace(r, tenant=tenant) for r in records]
