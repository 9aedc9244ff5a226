"""Load named queries (`-- name: x`) from sql/queries/*.sql, once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mailflow import SQL_DIR

NAME_LINE = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class NamedQuery:
    name: str
    sql: str
    doc: str  # the comment lines under the name: why the query is written so
    source: str


def parse_queries(text: str, source: str) -> dict[str, NamedQuery]:
    """Split a .sql file at `-- name:` lines; comments right after a name are its doc."""
    queries: dict[str, NamedQuery] = {}
    marks = list(NAME_LINE.finditer(text))
    for mark, nxt in zip(marks, marks[1:] + [None]):
        body = text[mark.end(): nxt.start() if nxt else len(text)].strip()
        doc_lines, sql_lines = [], []
        for line in body.splitlines():
            if not sql_lines and line.lstrip().startswith("--"):
                doc_lines.append(line.lstrip()[2:].strip())
            else:
                sql_lines.append(line)
        sql = "\n".join(sql_lines).strip().rstrip(";").strip()
        name = mark.group(1)
        if name in queries:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        if not sql:
            raise ValueError(f"{source}: query {name!r} has no SQL")
        queries[name] = NamedQuery(name, sql, " ".join(doc_lines), source)
    return queries


@cache
def queries(directory: Path = SQL_DIR / "queries") -> dict[str, NamedQuery]:
    """Every named query under sql/queries/; names are unique across files."""
    found: dict[str, NamedQuery] = {}
    for path in sorted(directory.glob("*.sql")):
        for name, query in parse_queries(path.read_text(encoding="utf-8"), path.name).items():
            if name in found:
                raise ValueError(f"{path.name}: query {name!r} is also defined in {found[name].source}")
            found[name] = query
    return found


def q(name: str) -> str:
    """The SQL of one named query."""
    return queries()[name].sql


def schema_migrations(directory: Path = SQL_DIR / "schema") -> list[tuple[int, str, str]]:
    """(version, name, sql) for each numbered migration file, in order."""
    out = []
    for path in sorted(directory.glob("[0-9][0-9][0-9]_*.sql")):
        out.append((int(path.name[:3]), path.stem, path.read_text(encoding="utf-8")))
    return out


def view_definitions(directory: Path = SQL_DIR / "views") -> list[tuple[str, str]]:
    """(name, CREATE OR REPLACE VIEW ...) for each view file; re-applied on every migrate."""
    return [(path.stem, path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.sql"))]
