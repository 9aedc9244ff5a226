"""Raw messages from the paths a user names: single files, folders of .eml, Maildir folders and mbox files."""

from __future__ import annotations

import mailbox
import os
from collections.abc import Iterator
from pathlib import Path

from mailflow.errors import MailflowError


def check_paths(paths: list[str]) -> list[Path]:
    """Every path readable, before any output: a typo is one line naming it, not a half-written report."""
    checked = []
    for name in paths:
        path = Path(name)
        if not path.exists():
            raise MailflowError(f"{name}: no such file or folder")
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise MailflowError(f"{name}: not readable (permission denied)")
        if path.is_dir() and not is_maildir(path) and not any(path.rglob("*.eml")) and any(_files(path)):
            raise MailflowError(f"{name}: a folder of files but none named *.eml, and not a Maildir (no new/ and cur/): "
                                "name the messages, or their Maildir")
        checked.append(path)
    return checked


def _files(path: Path) -> Iterator[Path]:
    return (f for f in path.rglob("*") if f.is_file() and not f.name.startswith("."))


def is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def read_messages(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    """(source, raw bytes) per message, in a stable order. The source is the message's file; a message of an
    mbox file is `FILE#N` (N from 1), since one file holds many."""
    for path in paths:
        try:
            if path.is_dir():
                yield from _folder(path)
            elif _is_mbox(path):
                yield from _mbox(path)
            else:
                yield str(path), path.read_bytes()
        except OSError as exc:
            raise MailflowError(f"{exc.filename or path}: cannot read ({exc.strerror or exc})") from None


def _folder(path: Path) -> Iterator[tuple[str, bytes]]:
    if is_maildir(path):
        files = [f for sub in ("new", "cur") for f in sorted((path / sub).iterdir())]
    else:
        files = sorted(f for f in path.rglob("*.eml"))
    for file in files:
        if file.is_file() and not file.name.startswith("."):
            yield str(file), file.read_bytes()


def _is_mbox(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(5) == b"From "


def _mbox(path: Path) -> Iterator[tuple[str, bytes]]:
    box = mailbox.mbox(str(path), create=False)
    try:
        for n, key in enumerate(box.iterkeys(), 1):
            yield f"{path}#{n}", box.get_bytes(key)
    finally:
        box.close()
