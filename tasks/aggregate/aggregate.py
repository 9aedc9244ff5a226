"""Aggregate: fold what the send ledgers, suppression logs and event logs gained into the warehouse.

Every ledger record becomes a delivery_attempts row and folds into deliveries; events are loaded
and machine opens and clicks flagged; then the campaigns' lifecycle moves, the suppression rules
(ledgers' and events' hard bounces, complaints and unsubscribes at once, soft bounces by count),
each campaign's status, and the suppression snapshot the next sends check against.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from mailflow.settings import Settings
from mailflow.tasks.aggregate.events import FileProgress, drop_event_staging, load_events, progress_frame, stage_events
from mailflow.tasks.aggregate.logblocks import blocks, line_count, lines_frame, read_records
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


# Ledger fields as the send stage writes them (tasks/files/ledger.py), for Polars' reader
LEDGER_SCHEMA = {"campaign_id": pl.String, "subscriber_id": pl.Int64, "variant": pl.String, "chunk_id": pl.Int64,
                 "attempt": pl.Int64, "status": pl.String, "smtp_code": pl.Int64, "enhanced_status": pl.String,
                 "detail": pl.String, "kind": pl.String, "reason": pl.String, "provider": pl.String,
                 "retry_at": pl.String, "logged_at": pl.String, "seq": pl.Int64}


def stage_ledgers(con: duckdb.DuckDBPyConnection, home: Path) -> list[FileProgress]:
    """Parse the whole lines each send ledger gained since the last load into TEMP staged_attempts.

    A ledger is continued at the offset loaded_files recorded, like an event log; its last line
    without a newline waits (the writer that resumes the chunk ends a torn one first).
    """
    known = dict(con.execute(q("loaded_file_sizes")).fetchall())
    con.execute(q("stage_attempt_table"))
    progress = []
    for path in sorted((home / LEDGER_DIR).glob("*/*.ndjson")):
        done = known.get(str(path), 0)
        size = path.stat().st_size
        if size <= done:
            continue
        reached, lines = done, 0
        for block in blocks(path, done, 1, stale=False):
            records = read_records(block, LEDGER_SCHEMA)
            if records is None:
                with inputs(con, input_event_lines=lines_frame(block)):
                    with inputs(con, input_ledger=con.sql(q("ledger_lines_as_records"))):
                        con.execute(q("stage_ledger_records"))
            else:
                text = records.select("file", "byte_offset", *(pl.col(c).cast(pl.String) for c in LEDGER_SCHEMA))
                with inputs(con, input_ledger=text):
                    con.execute(q("stage_ledger_records"))
            reached, lines = block.end, lines + line_count(block)
        if reached > done:
            progress.append(FileProgress(str(path), size, reached, lines))
    return progress


def load_logs(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, int]:
    """Fold what the logs gained into the warehouse in one transaction; a reload changes nothing.

    Ledgers first (delivery_attempts, deliveries), then events, whose machine flags read the
    deliveries' times. Afterwards TEMP touched_campaigns and touched_subscribers say what changed.
    """
    home = settings.home
    logs = changed_files(con, sorted((suppression_dir(home) / "log").glob("*.ndjson")))
    moves = changed_files(con, sorted((home / "campaigns").glob(f"*/{TRANSITIONS_FILE}")))
    log_frames = {p: read_log(p, INPUT_SCHEMAS["input_suppression_log"]) for p in logs}
    move_frames = {p: read_log(p, INPUT_SCHEMAS["input_transitions"]) for p in moves}
    suppressions = _concat([f for f, _ in log_frames.values()], "input_suppression_log")
    transitions = _concat([f for f, _ in move_frames.values()], "input_transitions")
    window = {"window_days": settings.soft_bounce_window_days}
    ledgers = stage_ledgers(con, home)
    event_files = stage_events(con, home)
    records = con.execute(q("count_staged_attempts")).fetchone()[0]
    for name in ("stage_touched_pairs", "stage_touched_campaigns", "stage_touched_subscribers"):
        con.execute(q(name))
    with inputs(con, input_suppression_log=suppressions, input_transitions=transitions), transaction(con):
        con.execute(q("insert_delivery_attempts"))
        con.execute(q("upsert_deliveries"))
        with inputs(con, input_event_progress=progress_frame(ledgers)):
            con.execute(q("record_ledger_files"))
        con.execute(q("insert_transitions"))
        con.execute(q("insert_logged_suppressions"))
        # after the service's own suppression lines: theirs come first
        events = load_events(con, event_files, home, settings.engagement)
        con.execute(q("suppress_hard_bounces"))
        con.execute(q("suppress_soft_bounces"), window | {"soft_limit": settings.soft_bounce_limit})
        con.execute(q("expire_soft_suppressions"), window)
        con.execute(q("mark_suppressed_subscribers"))
        con.execute(q("fill_touched_campaigns"))
        con.execute(q("fill_touched_subscribers"))
        for path, (frame, size) in {**log_frames, **move_frames}.items():
            con.execute(q("record_loaded_file"), {"path": str(path), "bytes": size, "rows": frame.height})
        con.execute(q("refresh_campaign_status"))
        refresh_marts(con, touched=True)  # only what the load touched (touched_campaigns, touched_subscribers)
    drop_staging(con)
    write_snapshot(home, con.sql(q("suppression_snapshot")).pl(), dict(con.execute(q("loaded_file_sizes")).fetchall()))
    if ledgers or logs or moves or events.get("events_loaded") or not preferences_path(home).exists():
        publish_preferences(con, home)  # what the preference centre shows; unchanged when nothing new was loaded
    total = con.execute(q("count_deliveries")).fetchone()[0]
    suppressed = con.execute(q("count_suppressions")).fetchone()[0]
    return {"files_loaded": len(ledgers) + len(logs) + len(moves), "records_read": records, "deliveries": total,
            "suppressions": suppressed, **events}


def drop_staging(con: duckdb.DuckDBPyConnection) -> None:
    """The run's working TEMP tables. The touched sets stay until the connection closes or the next
    run replaces them, so whatever follows the load in the same connection can read them."""
    drop_event_staging(con)
    con.execute(q("drop_staged_attempts"))


def _concat(frames: list[pl.DataFrame], name: str) -> pl.DataFrame:
    return pl.concat(frames) if frames else pl.DataFrame(schema=INPUT_SCHEMAS[name])


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
