"""What a GraphQL document would cost, computed from the document and its variables alone.

Every measure here is linear in the document's size: each fragment is walked once, however often
it is spread (a spread of a fragment that is being walked counts nothing, as validation rejects
cycles anyway), so a few kilobytes of fragments spreading each other cost microseconds, not the
exponential walk of the expanded document.

- ``expanded_size``: how many fields the operation has once fragments are inlined. Depth and
  alias checks walk the expanded document, so this bounds their work: ten fragments that each
  spread the next one twice are 2**10 fields from a few dozen tokens.
- ``operation_depths`` and ``alias_count``: the depth of each operation and its aliases, as
  Strawberry's ``QueryDepthLimiter`` and ``MaxAliasesLimiter`` count them, without their walk of
  every spread.
- ``operation_cost``: the estimated work and response size (see ``README``, Security)::

      cost = sum over selected fields of  weight x (product of the fan-outs above it)
           + for each search: vectors x (offset + topK)        (the Milvus hits and their join)
           + for each records page: first                      (the rows read)

  with weight 1 (``Record.vector``: 50), and fan-outs: the fields under ``hits`` (and under
  ``groups``, each group counted as one hit) count ``(offset + topK) x groupBy.size`` times
  (``topK`` in ``searchBatch``), those under a ``searchBatch`` once per query, those under
  ``edges`` ``first`` times. Sizes
  come from literal arguments, variables, variable defaults and the schema's defaults, each capped
  at its configured maximum (larger values are refused by the use case anyway); a value that is not
  a number counts as that maximum. Aliased fields count once per alias.

The names below are fields of the schema: ``search``, ``searchBatch`` and ``records`` at the root,
``hits``, ``groups``, ``edges`` and ``vector`` anywhere (each is one field of one type, but
``hits``: ``SearchResult`` and ``HitGroup``); a unit test keeps it so. A typed collection's
root field (``books { search records }``, ``collections`` passed in) is walked as the root: its
``search`` and ``records`` cost what the generic ones do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    value_from_ast_untyped,
)
from graphql.utilities import get_operation_ast

from resolvers.limits import DEFAULT_FIRST, DEFAULT_OFFSET, DEFAULT_TOP_K

__all__ = [
    "DEFAULT_FIRST",
    "DEFAULT_OFFSET",
    "DEFAULT_TOP_K",
    "Caps",
    "alias_count",
    "expanded_size",
    "operation_cost",
    "operation_depths",
]

VECTOR_WEIGHT = 50
ROOT = "(root)"  # a key of ``sizes`` that no field name can be


@dataclass(frozen=True, slots=True)
class Caps:
    """The largest size each argument can take (from the settings)."""

    top_k: int
    search_batch: int
    page_size: int


def fragments_of(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def expanded_size(document: DocumentNode) -> int:
    """Fields in all operations of ``document`` with fragments inlined."""
    fragments = _FragmentMemo(document)

    def size(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for sel in selection_set.selections if selection_set is not None else ():
            if isinstance(sel, FieldNode):
                total += 1 + size(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                total += size(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                total += fragments.spread(sel.name.value, size)
        return total

    return sum(
        size(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


class _FragmentMemo:
    """A measure of selection sets in which each fragment is measured once (cycles count 0)."""

    def __init__(self, document: DocumentNode) -> None:
        self.fragments = fragments_of(document)
        self.memo: dict[str, int] = {}
        self.walking: set[str] = set()

    def spread(self, name: str, measure: Callable[[SelectionSetNode | None], int]) -> int:
        if name in self.memo:
            return self.memo[name]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.walking:
            return 0
        self.walking.add(name)
        self.memo[name] = measure(fragment.selection_set)
        self.walking.discard(name)
        return self.memo[name]


def operation_depths(document: DocumentNode) -> dict[str, int]:
    """The depth of each operation (``anonymous`` for an unnamed one): a field with a selection
    set is one deeper than its deepest child; leaves and introspection fields count 0."""
    fragments = _FragmentMemo(document)

    def depth(selection_set: SelectionSetNode | None) -> int:
        deepest = 0
        for sel in selection_set.selections if selection_set is not None else ():
            if isinstance(sel, FieldNode):
                if sel.selection_set is not None and not sel.name.value.startswith("__"):
                    deepest = max(deepest, 1 + depth(sel.selection_set))
            elif isinstance(sel, InlineFragmentNode):
                deepest = max(deepest, depth(sel.selection_set))
            elif isinstance(sel, FragmentSpreadNode):
                deepest = max(deepest, fragments.spread(sel.name.value, depth))
        return deepest

    return {
        (d.name.value if d.name else "anonymous"): depth(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    }


def alias_count(document: DocumentNode) -> int:
    """Aliased fields in all operations with fragments inlined (a fragment counts once per
    spread)."""
    fragments = _FragmentMemo(document)

    def count(selection_set: SelectionSetNode | None) -> int:
        total = 0
        for sel in selection_set.selections if selection_set is not None else ():
            if isinstance(sel, FieldNode):
                total += (sel.alias is not None) + count(sel.selection_set)
            elif isinstance(sel, InlineFragmentNode):
                total += count(sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                total += fragments.spread(sel.name.value, count)
        return total

    return sum(
        count(d.selection_set)
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


@dataclass
class _Walk:
    caps: Caps
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]
    memo: dict[tuple[str, tuple[tuple[str, int], ...]], int] = field(default_factory=dict)
    walking: set[str] = field(default_factory=set)
    collections: frozenset[str] = frozenset()  # root fields of typed collections

    def selections(self, selection_set: SelectionSetNode | None, sizes: Mapping[str, int]) -> int:
        """``sizes``: the fan-out of child fields by name; ``ROOT`` marks the operation's root."""
        if selection_set is None:
            return 0
        total = 0
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                total += self.field(sel, sizes)
            elif isinstance(sel, InlineFragmentNode):
                total += self.selections(sel.selection_set, sizes)
            elif isinstance(sel, FragmentSpreadNode):
                total += self.spread(sel.name.value, sizes)
        return total

    def spread(self, name: str, sizes: Mapping[str, int]) -> int:
        key = (name, tuple(sorted(sizes.items())))
        if key in self.memo:
            return self.memo[key]
        fragment = self.fragments.get(name)
        if fragment is None or name in self.walking:
            return 0
        self.walking.add(name)
        self.memo[key] = self.selections(fragment.selection_set, sizes)
        self.walking.discard(name)
        return self.memo[key]

    def field(self, node: FieldNode, sizes: Mapping[str, int]) -> int:
        name = node.name.value
        weight = VECTOR_WEIGHT if name == "vector" else 1
        fanout = sizes.get(name, 1)  # hits and edges: set by the search or page above
        work = 0
        children: dict[str, int] = {}
        root = ROOT in sizes
        if root and name == "search":
            k = self.size(node, "offset", DEFAULT_OFFSET, self.caps.top_k) + self.size(
                node, "topK", DEFAULT_TOP_K, self.caps.top_k
            )
            k *= self.group_size(node)
            # groupBy's groups hold those hits: each counted under a group of its own.
            children, work = {"hits": k, "groups": k}, k
        elif root and name == "searchBatch":
            k = self.size(node, "topK", DEFAULT_TOP_K, self.caps.top_k)
            v = max(
                self.count(node, "vectors", self.caps.search_batch),
                self.count(node, "texts", self.caps.search_batch),
                self.count(node, "keywords", self.caps.search_batch),
                self.count(node, "hybrids", self.caps.search_batch),
            )
            children, work, fanout = {"hits": k}, v * k, v
        elif root and name == "records":
            first = self.size(node, "first", DEFAULT_FIRST, self.caps.page_size)
            children, work = {"edges": first}, first
        elif root and name in self.collections:
            children = {ROOT: 1}
        return work + weight + fanout * self.selections(node.selection_set, children)

    def argument(self, node: FieldNode, name: str) -> tuple[bool, Any]:
        for arg in node.arguments or ():
            if arg.name.value == name:
                if isinstance(arg.value, VariableNode):
                    var = arg.value.name.value
                    return var in self.variables, self.variables.get(var)
                return True, value_from_ast_untyped(arg.value, self.variables)
        return False, None

    def size(self, node: FieldNode, name: str, default: int, cap: int) -> int:
        given, value = self.argument(node, name)
        if not given or value is None:
            return min(default, cap)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return cap
        if isinstance(value, float) and not value.is_integer():
            return cap
        return max(0, min(int(value), cap))

    def group_size(self, node: FieldNode) -> int:
        """groupBy's size (hits per group), 1 without groupBy; capped at topK's maximum (the use
        case refuses topK * size above it)."""
        _, value = self.argument(node, "groupBy")
        if not isinstance(value, dict):
            return 1
        size = value.get("size", 1)
        if size is None:
            return 1
        if isinstance(size, bool) or not isinstance(size, int):
            return self.caps.top_k
        return max(1, min(size, self.caps.top_k))

    def count(self, node: FieldNode, name: str, cap: int) -> int:
        given, value = self.argument(node, name)
        if not given or not isinstance(value, list):
            return 1  # a single value is coerced to a list of one
        return min(len(value), cap)


def operation_cost(
    document: DocumentNode,
    *,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    caps: Caps,
    collections: frozenset[str] = frozenset(),
) -> int:
    """The cost of the operation that would run (0 when none can be chosen). ``collections``:
    the root fields of typed collections in the schema."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return 0
    values = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in values and definition.default_value is not None:
            values[name] = value_from_ast_untyped(definition.default_value)
    walk = _Walk(
        caps=caps, fragments=fragments_of(document), variables=values, collections=collections
    )
    return walk.selections(operation.selection_set, {ROOT: 1})
