"""Data checks: queries in sql/checks/ that must return zero rows."""

from __future__ import annotations

from collections.abc import Iterable

import duckdb

from mailflow import SQL_DIR


def check_sql(name: str) -> str:
    return (SQL_DIR / "checks" / f"{name}.sql").read_text(encoding="utf-8")


def all_checks() -> list[str]:
    return sorted(p.stem for p in (SQL_DIR / "checks").glob("assert_*.sql"))


def failing_checks(con: duckdb.DuckDBPyConnection, names: Iterable[str] | None = None) -> list[str]:
    """Names of the checks that return rows."""
    return [name for name in (names or all_checks()) if con.execute(check_sql(name)).fetchone() is not None]
