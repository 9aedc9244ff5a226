"""Aggregate: fold new and grown send ledgers into `deliveries`, then refresh campaign status."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from tasks.ledger import LEDGER_DIR
from tasks.sqlfiles import q
from tasks.warehouse import INPUT_SCHEMAS, connect, inputs, transaction


def changed_ledgers(con: duckdb.DuckDBPyConnection, home: Path) -> list[Path]:
    """Ledger files that are new or have grown since they were last loaded."""
    known = dict(con.execute(q("loaded_file_sizes")).fetchall())
    found = sorted((home / LEDGER_DIR).glob("*/*.ndjson"))
    return [p for p in found if known.get(str(p)) != p.stat().st_size]


def read_ledger(path: Path) -> tuple[pl.DataFrame, int]:
    """(whole records, bytes they span): a torn record left by a killed writer is skipped."""
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    schema = {**INPUT_SCHEMAS["input_ledger"], "logged_at": pl.String()}
    try:
        frame = pl.read_ndjson(whole, schema=schema) if whole.strip() else pl.DataFrame(schema=schema)
    except pl.exceptions.ComputeError:
        frame = pl.read_ndjson(b"".join(line for line in whole.splitlines(True) if _is_record(line)), schema=schema)
    return frame.with_columns(pl.col("logged_at").str.to_datetime(time_zone="UTC", time_unit="us")), len(whole)


def load_ledgers(con: duckdb.DuckDBPyConnection, home: Path) -> dict[str, int]:
    """Upsert the latest outcome per recipient; a reload of the same records changes nothing."""
    files = changed_ledgers(con, home)
    frames = {p: read_ledger(p) for p in files}
    records = pl.concat([f for f, _ in frames.values()]) if frames else pl.DataFrame(schema=INPUT_SCHEMAS["input_ledger"])
    with inputs(con, input_ledger=records), transaction(con):
        con.execute(q("upsert_deliveries"))
        for path, (frame, size) in frames.items():
            con.execute(q("record_loaded_file"), {"path": str(path), "bytes": size, "rows": frame.height})
        con.execute(q("refresh_campaign_status"))
    total = con.execute(q("count_deliveries")).fetchone()[0]
    return {"files_loaded": len(files), "records_read": records.height, "deliveries": total}


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


@task(name="load_ledgers", cache_policy=NO_CACHE)
def load_ledgers_task(settings: Settings) -> dict[str, int]:
    with connect(settings.warehouse) as con:
        return load_ledgers(con, settings.home)
