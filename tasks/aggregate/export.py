"""Export warehouse tables as CSV that spreadsheets cannot execute, or as Parquet."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import duckdb
import polars as pl

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q

EXPORTS = {"subscribers": "export_subscribers", "quarantine": "export_quarantine"}
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def formula_safe(frame: pl.DataFrame) -> pl.DataFrame:
    """Prefix risky text cells with an apostrophe, which spreadsheets show as text."""
    def safe(column: str) -> pl.Expr:
        risky = pl.any_horizontal([pl.col(column).str.starts_with(s) for s in FORMULA_START]).fill_null(False)
        return pl.when(risky).then(pl.lit("'") + pl.col(column)).otherwise(pl.col(column)).alias(column)

    return frame.with_columns(safe(c) for c, dtype in frame.schema.items() if dtype == pl.String)


def export_table(con: duckdb.DuckDBPyConnection, what: str, output: Path, fmt: str | None = None) -> int:
    """Write `subscribers` or `quarantine` to `output` (.csv or .parquet, or as `fmt` says); return rows."""
    if what not in EXPORTS:
        raise MailflowError(f"export: unknown table {what!r} (choose {', '.join(EXPORTS)})")
    fmt = fmt or ("parquet" if output.suffix.lower() in (".parquet", ".pq") else "csv")
    frame = con.sql(q(EXPORTS[what])).pl()
    output.parent.mkdir(parents=True, exist_ok=True)
    with private_file(output) as fh:
        if fmt == "parquet":
            frame.write_parquet(fh)
        else:
            frame = frame.with_columns(pl.col(pl.Datetime).dt.to_string("%Y-%m-%dT%H:%M:%S%z"))
            formula_safe(frame).write_csv(fh)
    return frame.height


def private_file(path: Path):
    """`path` opened for writing, readable by its owner only (0600) before a byte of subscriber data goes
    in — also when it already existed with a looser mode. A pipe or device (-o /dev/stdout) is left as it is."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")
