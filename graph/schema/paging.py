"""Arguments of paged and grouped search (``resolvers.paging``)."""

from __future__ import annotations

import strawberry

from resolvers.paging import GroupBy


@strawberry.input(
    description=(
        "Group hits by a filterable field of one value per record (STRING, INT, FLOAT, BOOL, "
        "DATETIME): at most size hits per distinct value, topK groups in the order of their "
        "best hit."
    )
)
class GroupByInput:
    field: str
    size: int = strawberry.field(default=1, description="Hits per group, at least 1.")

    def to_record(self) -> GroupBy:
        return GroupBy(field=self.field, size=self.size)
