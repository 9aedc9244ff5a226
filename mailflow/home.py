"""The home holds subscriber data: what mailflow creates there is its owner's alone (files 0600, dirs 0700)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077  # new files 0600, new directories 0700


def private_umask() -> None:
    """From now on this process, and every process it starts (Prefect's task workers, the receiver),
    creates files and directories for their owner only."""
    os.umask(PRIVATE_UMASK)


def close_home(home: Path) -> str | None:
    """Close an existing home that others may enter (mode 0700); return a line for the user, or None.

    Only the directory itself: once others cannot enter it, nothing below is reachable, whatever
    its own mode, and files created from now on are private anyway. A directory that is not the
    user's, or is shared with the sticky bit (/tmp), is left as it is, with a warning.
    """
    try:
        info = home.stat()
    except OSError:
        return None  # not there yet: created private under the umask
    mode = stat.S_IMODE(info.st_mode)
    if not stat.S_ISDIR(info.st_mode) or not mode & 0o077:
        return None
    if info.st_uid != os.getuid() or mode & stat.S_ISVTX:
        return (f"warning: home {home} is open to others (mode {mode:04o}) and holds subscriber data; "
                f"give it its own directory of mode 0700")
    try:
        home.chmod(0o700)
    except OSError as exc:
        return f"warning: home {home} is open to others (mode {mode:04o}) and could not be closed ({exc.strerror})"
    return f"home {home} was open to others (mode {mode:04o}); it is now 0700, as it holds subscriber data"
