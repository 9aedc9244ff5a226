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


_NEW_LOG = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def new_log_file(folder: Path, writer: str, n: int) -> tuple[int, Path, int]:
    """Open `folder/<writer>-<pid>-<n>.ndjson` for appending (0600), a new file, never one that exists: a pid
    seen before (a container's pid 1 after a restart) never appends to an old log. Returns the descriptor,
    the path and the next free n."""
    while True:
        path = folder / f"{writer}-{os.getpid()}-{n}.ndjson"
        n += 1
        try:
            return os.open(path, _NEW_LOG, 0o600), path, n
        except FileExistsError:
            continue
