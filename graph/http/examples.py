"""The worked example page (``examples/web``), served at ``/examples/`` by ``VECTORQL_EXAMPLES``.

The page lives in the source tree beside the packages, not in them: it is documentation that runs,
so it is there in a checkout (and ``vectorql serve --examples`` serves it) but not in a wheel.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["examples_directory"]


def examples_directory() -> Path:
    """``examples/web`` of the source checkout this package runs from.

    Raises ``FileNotFoundError`` naming the setting when there is none (an installed wheel).
    """
    directory = Path(__file__).resolve().parents[2] / "examples" / "web"
    if not (directory / "index.html").is_file():
        raise FileNotFoundError(
            f"VECTORQL_EXAMPLES is on but {directory} does not exist: the example page ships with "
            "the source checkout, not the package"
        )
    return directory
