"""Opt-outs always win: rows that unsubscribe someone, recognised in Polars and applied in DuckDB whatever the row's fate."""

from __future__ import annotations

import duckdb
import polars as pl

from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.validate import CONTROL_CHARS
from mailflow.tasks.ingest.normalise import OPT_OUT_FALSE, OPT_OUT_TRUE, STATUS_SYNONYMS

# Suppression causes, `kind:source` like the send stage's `bounce:user_unknown`. A complaint is an
# opt-out too, and the stronger one; `bounced` is not: it says nothing of the person's wish, and a
# hard bounce the send stage sees is suppressed by its own rule.
UNSUBSCRIBE, COMPLAINT = "unsubscribe:ingest", "complaint:ingest"
OPT_OUT_SCHEMA = {"line": pl.Int64, "email": pl.String, "cause": pl.String}
MAX_ADDRESS_BYTES = 254  # RFC 5321's path limit: nothing longer can be mailed, so nothing longer need be suppressed
_NOTE = " (an opt-out: the address is suppressed)"


def mark_opt_outs(frame: pl.DataFrame) -> pl.DataFrame:
    """Add `opt_out_cause` (null unless the row opts out), `opt_out_error` (an opt-out value that is
    neither yes nor no), and turn a ticked opt-out column into status `unsubscribed`.

    Runs on normalised rows (`opt_out` trimmed); a row that opts out in any way keeps its cause
    whether or not it is later accepted. Columns a file lacks are all null: their checks are
    skipped, so a file without them pays nothing (about 0.1 s per million rows otherwise)."""
    status = pl.col("status")
    if frame["status"].null_count() < frame.height:
        frame = frame.with_columns(status.str.to_lowercase().replace(STATUS_SYNONYMS))
    ticked = unclear = pl.lit(False)
    if frame["opt_out"].null_count() < frame.height:
        flag = pl.col("opt_out").str.to_lowercase()
        ticked = flag.is_in(OPT_OUT_TRUE).fill_null(False)
        unclear = (flag.is_not_null() & ~flag.is_in(OPT_OUT_TRUE) & ~flag.is_in(OPT_OUT_FALSE)).fill_null(False)
        frame = frame.with_columns(
            status=pl.when(ticked & (status.is_null() | (status == "active"))).then(pl.lit("unsubscribed")).otherwise(status))
    return frame.with_columns(
        opt_out_cause=pl.when(status == "complained").then(pl.lit(COMPLAINT))
        .when((status == "unsubscribed") | ticked | unclear).then(pl.lit(UNSUBSCRIBE)),
        opt_out_error=pl.when(unclear).then(pl.lit("bad_value: field opt_out is neither yes nor no")),
    ).drop("opt_out")


def opt_out_rows(frame: pl.DataFrame) -> pl.DataFrame:
    """OPT_OUT_SCHEMA: each opting-out row's address, as normalised as it can be.

    A parseable address is already canonical (mailflow.tasks.ingest.normalise); one that is not
    (no `@`, or several) is lower-cased whole. Control characters go, so `ann@example.com\\x00`
    suppresses the mailbox it names."""
    rows = frame.filter(pl.col("opt_out_cause").is_not_null() & pl.col("email").is_not_null())
    email = pl.col("email")
    text = (pl.when(email.str.count_matches("@") == 1).then(email).otherwise(email.str.to_lowercase())
            .str.replace_all(CONTROL_CHARS, "").str.strip_chars())
    rows = rows.select("line", email=text, cause="opt_out_cause")
    return rows.filter((pl.col("email").str.len_bytes() > 0)
                       & (pl.col("email").str.len_bytes() <= MAX_ADDRESS_BYTES)).cast(OPT_OUT_SCHEMA)


def note_opt_outs(refused: pl.DataFrame, opt_outs: pl.DataFrame) -> pl.DataFrame:
    """A quarantined row whose opt-out was applied says so, so nobody reads its quarantine as the unsubscribe lost."""
    applied = opt_outs.select("line").unique().with_columns(_applied=pl.lit(True))
    return refused.join(applied, on="line", how="left").with_columns(
        reason=pl.when(pl.col("_applied")).then(pl.col("reason") + _NOTE).otherwise(pl.col("reason"))).drop("_applied")


def apply_opt_outs(con: duckdb.DuckDBPyConnection) -> int:
    """Suppress every address the file opted out and unsubscribe its active subscriber; the count of addresses.

    Reads `input_opt_outs` inside the ingest's transaction, after the subscribers were written, so
    an opt-out anywhere in the file wins over a plain row of the same address."""
    con.execute(q("stage_opt_outs"))
    count, addresses = con.execute(q("count_opt_outs")).fetchone()
    if addresses:
        con.execute(q("suppress_opt_outs"))
        con.execute(q("unsubscribe_opted_out"))
    con.execute(q("drop_staged_opt_outs"))
    return count
