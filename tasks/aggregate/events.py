"""Event logs into the warehouse: each file's new whole lines once, each event id once, bad lines kept as rejects."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from mailflow.settings_engagement import EngagementSettings
from mailflow.tasks.aggregate.machine import flag_machine_events
from mailflow.tasks.aggregate.subscriptions import apply_subscription_events
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs

EVENTS_DIR = "events"
# A file is read in blocks, so memory stays bounded however far a log grew since the last run.
BLOCK_BYTES = 32 << 20
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
    its newline waits for the next run, unless it has not changed for STALE_TAIL_SECONDS.
    """
    now = time.time()
    known = {file: (done, rows) for file, done, rows in con.execute(q("event_file_progress")).fetchall()}
    con.execute(q("stage_event_table"))
    progress = []
    for path in event_log_files(home):
        stat = path.stat()
        done, rows = known.get(str(path), (0, 0))
        if stat.st_size <= done:  # unchanged: log files are append-only (one cut short by hand is not read again)
            continue
        stale = now - stat.st_mtime > STALE_TAIL_SECONDS
        reached, lines = done, 0
        for frame, end in new_lines(path, done, rows + 1, stale):
            with inputs(con, input_event_lines=frame):
                con.execute(q("parse_event_lines"), {"raw_limit": RAW_LIMIT})
            reached, lines = end, lines + frame.height
        if reached > done:
            progress.append(FileProgress(str(path), max(stat.st_size, reached), reached, lines))
    return progress


def new_lines(path: Path, start: int, first_line: int, stale: bool) -> Iterator[tuple[pl.DataFrame, int]]:
    """(frame of whole lines, offset after them) per block read from `start`; a stale unfinished tail last."""
    with path.open("rb") as fh:
        fh.seek(start)
        offset, line, carry = start, first_line, b""
        while block := fh.read(BLOCK_BYTES):
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut:
                frame = lines_frame(str(path), data[:cut - 1], offset, line)
                offset, line = offset + cut, line + frame.height
                yield frame, offset
            carry = data[cut:]
        if carry and stale:
            yield lines_frame(str(path), carry, offset, line, tail=True), offset + len(carry)


def lines_frame(file: str, lines: bytes, offset: int, first_line: int, tail: bool = False) -> pl.DataFrame:
    """The lines (joined by newlines, without the last one) as `input_event_lines`.

    Split and measured in Polars: a Python loop over the lines costs more than parsing them. A
    line that is not UTF-8 has no text; `undecodable` shows it with its bad bytes escaped.
    """
    try:
        text = pl.Series("text", [lines.decode()]).str.split("\n").explode()
        size = text.str.len_bytes().cast(pl.Int64) + 1
        undecodable = pl.Series("undecodable", [None] * text.len(), dtype=pl.String)
    except UnicodeDecodeError:
        split = lines.split(b"\n")
        text = pl.Series("text", [_utf8(b) for b in split], dtype=pl.String)
        size = pl.Series([len(b) + 1 for b in split], dtype=pl.Int64)
        undecodable = pl.Series("undecodable", [None if t is not None else b.decode("utf-8", "backslashreplace")
                                                for b, t in zip(split, text)], dtype=pl.String)
    n = text.len()
    return pl.DataFrame({
        "file": pl.repeat(file, n, dtype=pl.String, eager=True),
        "byte_offset": size.cum_sum() - size + offset,
        "line": pl.int_range(first_line, first_line + n, dtype=pl.Int64, eager=True),
        "tail": pl.repeat(tail, n, dtype=pl.Boolean, eager=True),
        "text": text,
        "undecodable": undecodable,
    })


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode()
    except UnicodeDecodeError:
        return None


def progress_frame(progress: list[FileProgress]) -> pl.DataFrame:
    return pl.DataFrame([vars(p) for p in progress], schema={"file": pl.String, "size": pl.Int64,
                                                             "bytes_loaded": pl.Int64, "rows": pl.Int64})


def load_events(con: duckdb.DuckDBPyConnection, progress: list[FileProgress], home: Path,
                engagement: EngagementSettings) -> dict[str, int]:
    """Inside the aggregate's transaction, after the ledgers: staged lines into events (new_events
    holds the ones added) and event_rejects, machine opens and clicks flagged for the recipients
    touched (touched_pairs), the events' suppressions applied, the manifest moved on."""
    con.execute(q("insert_event_rejects"))
    con.execute(q("stage_new_events"))
    con.execute(q("fill_new_events"))
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
    return {"event_files": len(progress), "events_loaded": added, "events_repeated": repeated,
            "event_lines_rejected": rejected, "event_bytes_waiting": int(waiting)}


def drop_event_staging(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("drop_staged_events", "drop_new_events", "drop_machine_candidates", "drop_machine_flags"):
        con.execute(q(name))
