"""Python types of vectorql's custom scalars, used by the generated client (see pyproject.toml)."""

from typing import Any, TypeAlias

# A list of floats, or a base64 string of little-endian float32 values (compact for big batches).
Vector: TypeAlias = list[float] | str

# Any JSON value: metadata objects, filter operands.
JSON: TypeAlias = Any
