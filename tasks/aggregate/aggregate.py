"""Aggregate: fold new and grown send ledgers, suppression logs and event logs into the warehouse.

Then load the campaigns' lifecycle moves, apply the suppression rules of the bounce taxonomy,
set each campaign's status from its latest move, and
write the suppression snapshot the next sends check against.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from mailflow.settings import Settings
from mailflow.tasks.aggregate.events import drop_event_staging, load_events, stage_events
from mailflow.tasks.aggregate.marts import refresh_marts
from mailflow.tasks.aggregate.subscriptions import publish_preferences
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import INPUT_SCHEMAS, inputs, transaction
from mailflow.tasks.files.ledger import LEDGER_DIR
from mailflow.tasks.files.lifecycle import TRANSITIONS_FILE
from mailflow.tasks.files.preferences import preferences_path
from mailflow.tasks.files.suppress import suppression_dir, write_snapshot


def changed_files(con: duckdb.DuckDBPyConnection, found: list[Path]) -> list[Path]:
    """Log files that are new or have grown since they were last loaded."""
    known = dict(con.execute(q("loaded_file_sizes")).fetchall())
    return [p for p in found if known.get(str(p)) != p.stat().st_size]


def read_log(path: Path, schema: dict) -> tuple[pl.DataFrame, int]:
    """(whole records, bytes they span): a torn record left by a killed writer is skipped."""
    data = path.read_bytes()
    whole = data[: data.rfind(b"\n") + 1]
    try:
        frame = pl.read_ndjson(whole, schema=schema) if whole.strip() else pl.DataFrame(schema=schema)
    except pl.exceptions.ComputeError:
        frame = pl.read_ndjson(b"".join(line for line in whole.splitlines(True) if _is_record(line)), schema=schema)
    return frame, len(whole)


def read_ledger(path: Path) -> tuple[pl.DataFrame, int]:
    frame, size = read_log(path, {**INPUT_SCHEMAS["input_ledger"], "logged_at": pl.String()})
    return frame.with_columns(pl.col("logged_at").str.to_datetime(time_zone="UTC", time_unit="us")), size


def load_logs(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, int]:
    """Upsert the latest outcome per recipient and the logged suppressions; a reload changes nothing."""
    home = settings.home
    ledgers = changed_files(con, sorted((home / LEDGER_DIR).glob("*/*.ndjson")))
    logs = changed_files(con, sorted((suppression_dir(home) / "log").glob("*.ndjson")))
    moves = changed_files(con, sorted((home / "campaigns").glob(f"*/{TRANSITIONS_FILE}")))
    ledger_frames = {p: read_ledger(p) for p in ledgers}
    log_frames = {p: read_log(p, INPUT_SCHEMAS["input_suppression_log"]) for p in logs}
    move_frames = {p: read_log(p, INPUT_SCHEMAS["input_transitions"]) for p in moves}
    records = _concat([f for f, _ in ledger_frames.values()], "input_ledger")
    suppressions = _concat([f for f, _ in log_frames.values()], "input_suppression_log")
    transitions = _concat([f for f, _ in move_frames.values()], "input_transitions")
    window = {"window_days": settings.soft_bounce_window_days}
    event_files = stage_events(con, home)
    with inputs(con, input_ledger=records, input_suppression_log=suppressions, input_transitions=transitions), \
            transaction(con):
        con.execute(q("upsert_deliveries"))
        con.execute(q("insert_transitions"))
        con.execute(q("insert_logged_suppressions"))
        events = load_events(con, event_files)  # after the service's own suppression lines: theirs come first
        con.execute(q("suppress_hard_bounces"))
        con.execute(q("suppress_soft_bounces"), window | {"soft_limit": settings.soft_bounce_limit})
        con.execute(q("expire_soft_suppressions"), window)
        con.execute(q("mark_bounced_subscribers"))
        for path, (frame, size) in {**ledger_frames, **log_frames, **move_frames}.items():
            con.execute(q("record_loaded_file"), {"path": str(path), "bytes": size, "rows": frame.height})
        con.execute(q("refresh_campaign_status"))
        refresh_marts(con, touched=True)  # only what the load touched, or everything without its touched_* tables
    drop_event_staging(con)
    write_snapshot(home, con.sql(q("suppression_snapshot")).pl(), dict(con.execute(q("loaded_file_sizes")).fetchall()))
    if ledgers or logs or moves or events.get("events_loaded") or not preferences_path(home).exists():
        publish_preferences(con, home)  # what the preference centre shows; unchanged when nothing new was loaded
    total = con.execute(q("count_deliveries")).fetchone()[0]
    suppressed = con.execute(q("count_suppressions")).fetchone()[0]
    return {"files_loaded": len(ledgers) + len(logs) + len(moves), "records_read": records.height, "deliveries": total,
            "suppressions": suppressed, **events}


def _concat(frames: list[pl.DataFrame], name: str) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=INPUT_SCHEMAS[name])


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
