"""Template files' text for the studio: read with a digest, saved only over the text that was loaded."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.studio.names import template_file


class ChangedOnDisk(Exception):
    """The file is not what the editor loaded: someone (git, another editor) changed it since."""


def digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_template(folder: Path, name: str) -> tuple[str, str]:
    """A template file's text and its digest (the editor sends the digest back when saving)."""
    text = template_file(folder, name).read_text(encoding="utf-8")
    return text, digest(text)


def save_template(folder: Path, name: str, text: str, loaded: str) -> tuple[str, str]:
    """Replace the template's text, unless the file changed since it was loaded (its digest is not `loaded`):
    ChangedOnDisk, and nothing written. Returns the digests before and after. The file keeps its mode."""
    path = template_file(folder, name)
    before = digest(path.read_text(encoding="utf-8"))
    if before != loaded:
        raise ChangedOnDisk(f"{name} changed on disk since it was opened")
    mode = path.stat().st_mode & 0o777
    text = text.replace("\r\n", "\n")  # browsers send CRLF from a textarea; the files in git have LF

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)  # the umask may have taken bits the file had

    atomic_write(path, write)
    return before, digest(text)
