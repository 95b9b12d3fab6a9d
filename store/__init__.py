"""vectorql's engine: Milvus adapter, SQL repositories, write protocol, filters, loaders.

Knows nothing of GraphQL or HTTP; configured with plain values through ``StoreConfig``.
"""

from store.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    LimitExceeded,
    NotFound,
    Problem,
    Unauthenticated,
    Unavailable,
    VectorqlError,
)
from store.service import Store, StoreConfig

__all__ = [
    "Conflict",
    "Forbidden",
    "InvalidInput",
    "LimitExceeded",
    "NotFound",
    "Problem",
    "Store",
    "StoreConfig",
    "Unauthenticated",
    "Unavailable",
    "VectorqlError",
]
