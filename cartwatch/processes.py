"""Whether a process still runs, by its id (no import beyond os: the command line's checks use it)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while a process with this id exists (one of another user counts as existing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
