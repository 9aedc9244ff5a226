"""Saved segments: `NAME.sql` files (the project's, then the built-in ones), composed by `segment('name')`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mailflow import SQL_DIR
from mailflow.errors import MailflowError
from mailflow.tasks.plan.condition import SEGMENT_NAME, Condition, check_condition

BUILTIN_DIR = SQL_DIR / "segments"
# A composed condition may grow past what one file may hold; this bounds runaway compositions.
_EXPANDED_LENGTH = 200_000


@dataclass(frozen=True)
class Segment:
    name: str
    path: Path
    source: str  # "project" or "built-in"
    text: str  # the condition as written, a trailing `;` dropped
    description: str  # its leading `--` comment lines


def segment_dirs(project_dir: Path) -> tuple[Path, ...]:
    """Where segments are looked up, the first file of a name winning: the project's, then the built-in ones."""
    if project_dir.resolve() == BUILTIN_DIR.resolve():  # run from mailflow's own checkout
        return (BUILTIN_DIR,)
    return (project_dir, BUILTIN_DIR)


def find_segment(name: str, dirs: Sequence[Path]) -> Path | None:
    if not SEGMENT_NAME.fullmatch(name):
        return None
    return next((d / f"{name}.sql" for d in dirs if (d / f"{name}.sql").is_file()), None)


def load_segment(path: Path) -> Segment:
    """Read one segment file; its description is the comment it starts with."""
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise MailflowError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise MailflowError(f"{path}: cannot read ({exc.strerror})") from None
    lines = raw.strip().splitlines()
    comments = [line.strip()[2:].strip() for line in _leading(lines)]
    text = raw.rstrip()
    text = text[:-1].rstrip() if text.endswith(";") else text
    if all(not line.strip() or line.strip().startswith("--") for line in text.splitlines()):
        raise MailflowError(f"{path}: holds no condition (write one boolean expression over subscribers)")
    source = "built-in" if path.parent.resolve() == BUILTIN_DIR.resolve() else "project"
    return Segment(path.stem, path, source, text, " ".join(c for c in comments if c))


def all_segments(dirs: Sequence[Path]) -> list[Segment]:
    """Every segment by name: a project's file hides a built-in one of the same name."""
    found: dict[str, Path] = {}
    for directory in dirs:
        for path in sorted(directory.glob("*.sql")) if directory.is_dir() else []:
            if SEGMENT_NAME.fullmatch(path.stem):
                found.setdefault(path.stem, path)
    return [load_segment(found[name]) for name in sorted(found)]


class Library:
    """Segments by name, each expanded once: every `segment('x')` replaced by x's own condition."""

    def __init__(self, dirs: Sequence[Path]):
        self.dirs = tuple(dirs)
        self._expanded: dict[str, tuple[str, Condition]] = {}  # name -> (its file, its expanded condition)

    def find(self, name: str) -> Path | None:
        return find_segment(name, self.dirs)

    def segment(self, name: str, field: str) -> Segment:
        path = self.find(name)
        if path is None:
            places = " or ".join(str(d) for d in self.dirs)
            raise MailflowError(f"{field}: segment({name!r}) names no segment (no {name}.sql in {places})")
        return load_segment(path)

    def expanded(self, name: str, field: str, chain: tuple[str, ...] = ()) -> Condition:
        """The segment's condition with its includes expanded, checked whole."""
        if name not in self._expanded:
            segment = self.segment(name, field)
            self._expanded[name] = (str(segment.path), self.expand(segment.text, str(segment.path), (*chain, name)))
        return self._expanded[name][1]

    def checked(self) -> list[tuple[str, Condition]]:
        """(file, expanded condition) of every segment expanded so far, each after those it includes."""
        return list(self._expanded.values())

    def expand(self, text: str, field: str, chain: tuple[str, ...] = ()) -> Condition:
        """Check `text`, splice each segment() it calls, by its place in DuckDB's own parse tree,
        as that segment's condition in parentheses, and check the result again."""
        checked = check_condition(text, field)
        if not checked.calls:
            return checked
        out = data = text.encode()
        for call in reversed(checked.calls):
            if call.name in chain:
                cycle = " -> ".join((*chain[chain.index(call.name):], call.name))
                raise MailflowError(f"{field}: segments include each other: {cycle}")
            inner = self.expanded(call.name, field, chain)
            assert data[call.start:call.end].lower().startswith(b"segment"), "a parse position points elsewhere"
            out = out[:call.start] + b"(\n" + inner.text.encode() + b"\n)" + out[call.end:]
        whole = check_condition(out.decode(), field, max_length=_EXPANDED_LENGTH)
        assert not whole.calls, "an expanded condition still calls segment()"
        return whole


def includes(segment: Segment) -> tuple[str, ...]:
    """The segments this one calls directly, in order of first mention."""
    return tuple(dict.fromkeys(c.name for c in check_condition(segment.text, str(segment.path)).calls))


def _leading(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if not line.strip().startswith("--"):
            break
        out.append(line)
    return out
