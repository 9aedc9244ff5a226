"""Template names the studio accepts: a file directly in the templates folder, never a way out of it."""

from __future__ import annotations

import re
from pathlib import Path

# A template's parts (send stage: NAME.html.j2 and NAME.txt.j2). Letters, digits, "_", "-" and inner dots only:
# no separator, no "..", no leading dot (hidden files), no space or control character, nothing a shell or URL bends
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*")
PARTS = (".html.j2", ".txt.j2")
MAX_NAME = 100


class BadTemplateName(ValueError):
    """A name that is not a template file of the folder: why, for the one line the user sees."""


def template_file(folder: Path, name: str) -> Path:
    """The file `name` (e.g. "newsletter.html.j2") in `folder`, or BadTemplateName. A symlink is refused even when
    it points inside: the send stage would read what it points at, and checks of this name would be of another file."""
    if not isinstance(name, str) or len(name) > MAX_NAME or not name.endswith(PARTS):
        raise BadTemplateName(f"{name!r} is not a template file name (NAME.html.j2 or NAME.txt.j2)")
    if not _NAME.fullmatch(name):
        raise BadTemplateName(f"{name!r}: a template name has letters, digits, '_', '-' and dots only")
    root = folder.resolve()
    path = root / name
    if path.is_symlink():
        raise BadTemplateName(f"{name!r} is a symbolic link: the studio edits real files only")
    if path.resolve().parent != root:  # belt and braces: the pattern already keeps separators out
        raise BadTemplateName(f"{name!r} leaves the templates folder")
    return path


def template_names(folder: Path) -> list[str]:
    """The template files of `folder` the studio can open, sorted (symlinks and odd names left out)."""
    try:
        entries = sorted(p.name for p in folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = []
    for name in entries:
        try:
            path = template_file(folder, name)
        except BadTemplateName:
            continue
        if path.is_file():
            names.append(name)
    return names
