"""Typed per-collection schema (design.md section 10): each collection's own GraphQL types,
filters and inputs next to the generic API, rebuilt live when collections change.

- ``names``: the naming rule and the refusal of collisions.
- ``comparisons``, ``filters``: typed filters and their translation to the generic filter.
- ``types``: one collection's types, delegating to the generic fields.
- ``build``: the live schema of a set of collections (types cached per collection).
- ``leaves``: the typed types' scalar fields, read directly by the lean executor.
- ``live``: the schema a process serves, following the schema version in SQL.
"""

from graph.schema.typed.build import TypedSchemas
from graph.schema.typed.names import GenericNames, check_names, prefix, root_field

__all__ = ["GenericNames", "TypedSchemas", "check_names", "prefix", "root_field"]
