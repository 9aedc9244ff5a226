"""Write a file whole or not at all: write a temporary file beside it, then rename it over the old one."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` fills a temporary file in `path`'s folder, which then replaces `path` in one rename:
    a reader sees the old file or the new one, never half of it. The temporary name is hidden and
    carries the pid, so two writers of one file never share a temporary file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def fsync_dir(folder: Path) -> None:
    """A folder's entries on disk: a rename into it or a file created in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
