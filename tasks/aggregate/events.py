"""Event logs into the warehouse: each file's new whole lines once, each event id once, bad lines kept as rejects."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from mailflow.event_line import DATA, FIELDS
from mailflow.settings_engagement import EngagementSettings
from mailflow.tasks.aggregate.fastread import Slice, stage_slices, whole_end
from mailflow.tasks.aggregate.logblocks import Block, blocks, line_count, lines_frame, read_records
from mailflow.tasks.aggregate.machine import flag_machine_events
from mailflow.tasks.aggregate.subscriptions import apply_subscription_events
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs

EVENTS_DIR = "events"
# A rejected line is kept up to this many characters: enough to see what it was.
RAW_LIMIT = 2000
# A last line without its newline is being written, or was torn by a writer that died. Its
# writer appends in whole lines within a second or so; unchanged for this long, it never will be,
# and it is loaded (or rejected) as it stands rather than waiting for ever, unseen.
STALE_TAIL_SECONDS = 3600.0


@dataclass(frozen=True)
class FileProgress:
    file: str
    size: int  # the file's size when read
    bytes_loaded: int  # whole lines up to here are staged
    rows: int  # whole lines staged this run


def event_log_files(home: Path) -> list[Path]:
    return sorted((home / EVENTS_DIR).glob("*.ndjson"))


def stage_events(con: duckdb.DuckDBPyConnection, home: Path) -> list[FileProgress]:
    """Parse the lines each event log gained since the last load into the TEMP table staged_events.

    A file is continued at the offset the manifest (event_files) recorded; a last line without
    its newline waits for the next run, unless it has not changed for STALE_TAIL_SECONDS. The whole
    lines go through DuckDB's reader (fastread.py) when it can take them, else the block reader.
    """
    now = time.time()
    known = {file: (done, rows) for file, done, rows in con.execute(q("event_file_progress")).fetchall()}
    con.execute(q("stage_event_table"))
    grown = []
    for path in event_log_files(home):
        stat = path.stat()
        done, rows = known.get(str(path), (0, 0))
        if stat.st_size > done:  # else unchanged: log files are append-only (one cut short by hand is not read again)
            grown.append((path, stat, done, rows))
    slices = [Slice(path, done, whole_end(path, done, stat.st_size)) for path, stat, done, rows in grown]
    fast = stage_slices(con, [s for s in slices if s.end > s.start], RAW_LIMIT)
    progress = []
    for (path, stat, done, rows), piece in zip(grown, slices, strict=True):
        stale = now - stat.st_mtime > STALE_TAIL_SECONDS
        reached, lines = done, 0
        if str(path) in fast:
            reached, lines = piece.end, fast[str(path)]
        for block in blocks(path, reached, rows + lines + 1, stale):
            stage_block(con, block)
            reached, lines = block.end, lines + line_count(block)
        if reached > done:
            progress.append(FileProgress(str(path), max(stat.st_size, reached), reached, lines))
    fill_rejected_lines(con)
    pick_new_events(con)
    return progress


def pick_new_events(con: duckdb.DuckDBPyConnection) -> None:
    """new_events from the staged lines, then staged_events cut to its rejects. Before the aggregate's
    transaction (nothing of the warehouse is written): inside it the cut could not free the memory,
    and at 10M lines a second copy of every event pushed the load past DuckDB's memory limit, to disk."""
    con.execute(q("stage_new_events"))
    con.execute(q("fill_new_events"))
    con.execute(q("count_staged_events"))
    con.execute(q("keep_staged_rejects"))


def stage_block(con: duckdb.DuckDBPyConnection, block: Block) -> None:
    """One block into staged_events: read whole by Polars when every line is a JSON object, else line by line.
    Either way the same query (parse_event_records) types each field and judges each line."""
    records = event_records(block)
    if records is None:
        with inputs(con, input_event_lines=lines_frame(block)):
            with inputs(con, input_event_records=con.sql(q("event_lines_as_records"))):
                con.execute(q("parse_event_records"), {"raw_limit": RAW_LIMIT})
        return
    with inputs(con, input_event_records=records):
        con.execute(q("parse_event_records"), {"raw_limit": RAW_LIMIT})


def fill_rejected_lines(con: duckdb.DuckDBPyConnection) -> None:
    """The text of lines Polars read whole but the judge rejected (no event_id, a bad time ...), read
    again from their files: rare, so one query finds them all rather than one per block."""
    for file, offset in con.execute(q("staged_rejects_without_raw")).fetchall():
        with open(file, "rb") as fh:
            fh.seek(offset)
            line = fh.readline().rstrip(b"\n")
        con.execute(q("set_staged_raw"), {"file": file, "byte_offset": offset,
                                          "raw": line.decode(errors="backslashreplace")[:RAW_LIMIT]})


def event_records(block: Block) -> pl.DataFrame | None:
    """The block as `input_event_records` when Polars reads it whole: the known fields as text (SQL types and
    judges them), the others packed into `data`."""
    frame = read_records(block)
    if frame is None:
        return None
    if any(frame.schema[c].is_nested() for c in FIELDS if c in frame.columns):
        return None  # an object or a list in a known field (Polars writes an empty object as `}`): line by line
    nested = frame.schema.get(DATA)
    nested = [f.name for f in nested.fields] if isinstance(nested, pl.Struct) else None  # the line's `data` object
    extras = [c for c in frame.columns if c not in FIELDS and c not in ("file", "byte_offset", "line")
              and not (c == DATA and nested is not None) and c not in (nested or ())]
    try:
        fields = [pl.col(c).cast(pl.String) if c in frame.columns else pl.lit(None, dtype=pl.String).alias(c)
                  for c in FIELDS]
        packed = [pl.col(c) for c in extras] + [pl.col(DATA).struct.field(f).alias(f) for f in nested or ()]
        data = pl.struct(packed).struct.json_encode() if packed else pl.lit("{}")
        return frame.select("file", "byte_offset", "line", pl.lit(False).alias("tail"),
                            pl.lit(None, dtype=pl.String).alias("problem"), pl.lit(None, dtype=pl.String).alias("text"),
                            *fields, data.alias("data"))
    except pl.exceptions.PolarsError:  # a known field holding an object or a list: line by line
        return None


def progress_frame(progress: list[FileProgress]) -> pl.DataFrame:
    return pl.DataFrame([vars(p) for p in progress], schema={"file": pl.String, "size": pl.Int64,
                                                             "bytes_loaded": pl.Int64, "rows": pl.Int64})


def load_events(con: duckdb.DuckDBPyConnection, progress: list[FileProgress], home: Path,
                engagement: EngagementSettings) -> dict[str, int]:
    """Inside the aggregate's transaction, after the ledgers: new_events (pick_new_events) into events,
    rejects into event_rejects, machine opens and clicks flagged for the recipients touched
    (touched_pairs), the events' suppressions applied, the manifest moved on."""
    con.execute(q("insert_event_rejects"))
    con.execute(q("fill_touched_pairs"))
    flag_machine_events(con, home, engagement)
    con.execute(q("insert_new_events"))
    con.execute(q("update_machine_flags"))
    con.execute(q("suppress_from_events"))
    con.execute(q("unsubscribe_subscribers"))
    apply_subscription_events(con)
    with inputs(con, input_event_progress=progress_frame(progress)):
        con.execute(q("record_event_files"))
    added, repeated, rejected = con.execute(q("event_load_counts")).fetchall()[0]
    waiting = con.execute(q("event_bytes_waiting")).fetchall()[0][0]
    machine = con.execute(q("count_machine_flags")).fetchone()[0]
    return {"event_files": len(progress), "events_loaded": added, "events_repeated": repeated,
            "event_lines_rejected": rejected, "event_bytes_waiting": int(waiting), "events_machine": machine}


def drop_event_staging(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("drop_machine_candidates", "drop_staged_events", "drop_staged_event_counts", "drop_new_events",
                 "drop_earlier_human_opens", "drop_machine_flags"):  # the view first: it reads new_events
        con.execute(q(name))
