"""Milvus Lite files: whether another process has one open.

A Milvus Lite "file" (``./data/milvus.db``) is a data directory that one process at a time opens,
holding an advisory ``flock`` on its ``LOCK`` file for as long as it is open (design.md section 9).
Asking costs a file open, with nothing started: the CLI uses it to find out, before opening the
store, that ``vectorql serve`` holds the file.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LOCK_FILENAME = "LOCK"


def lite_file_in_use(path: str | os.PathLike[str]) -> bool:
    """True when another process holds the Milvus Lite file ``path`` open (False for a file that
    does not exist yet, or where the lock cannot be asked)."""
    if sys.platform == "win32":  # pragma: no cover - Milvus Lite's lock there is msvcrt's
        return False
    import fcntl

    try:
        fd = os.open(Path(path) / LOCK_FILENAME, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
