"""Event logs' new whole lines read by DuckDB's parallel NDJSON reader; a file it cannot take goes to the block reader.

The contract (mailflow/event_line.py) fixes a line's top-level fields, so DuckDB reads them as
columns, with no schema inferred per file and no Python per line. A file is read from where the
last run stopped to the end of its last whole line: whole, when that is the file; else that byte
range is copied to a temporary file first (a torn last line waits, as with the block reader). A
slice DuckDB cannot read (a line not JSON, not UTF-8 ...), whose first line carries a field
outside the contract, or with a line the judge rejects (or an old flat line, parse_event_records'
`flat`) is taken back and left to the block reader (events.stage_block), which keeps every
reject's text, offset and line number. One difference stays: DuckDB skips blank lines without a
trace, so a file's `rows` in event_files (and the line numbers of later rejects in it) do not
count them. A line of a contract file whose other fields sit at the top level (a writer breaking
the contract, past the first line) loses them: tests/test_event_contract.py holds every writer to it.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mailflow.event_line import DATA, FIELDS
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs

COPY_BYTES = 8 << 20  # a slice is copied to its temporary file this much at a time
TAIL_BYTES = 64 << 10  # the last newline is looked for this much at a time, from the end


@dataclass(frozen=True)
class Slice:
    path: Path
    start: int  # where this run begins: the offset the manifest recorded
    end: int  # after the last whole line


def whole_end(path: Path, start: int, size: int) -> int:
    """The offset after the file's last newline at or after `start` (`start` when there is none)."""
    with path.open("rb") as fh:
        pos = size
        while pos > start:
            begin = max(start, pos - TAIL_BYTES)
            fh.seek(begin)
            cut = fh.read(pos - begin).rfind(b"\n")
            if cut >= 0:
                return begin + cut + 1
            pos = begin
    return start


def keeps_contract(path: Path, start: int) -> bool:
    """Whether the slice's first line names only the contract's fields (an old flat file mostly does not)."""
    with path.open("rb") as fh:
        fh.seek(start)
        first = fh.readline()
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and set(record) <= {*FIELDS, DATA}


def stage_slices(con: duckdb.DuckDBPyConnection, slices: list[Slice], raw_limit: int) -> dict[str, int]:
    """Each slice's lines into staged_events (parse_event_records types and judges them); returns the
    lines staged per file, for the slices read whole. The others' rows are taken back: the caller's
    block reader reads them."""
    folder = Path(tempfile.mkdtemp(prefix="mailflow-events-"))
    try:
        for n, piece in enumerate(slices):
            if not keeps_contract(piece.path, piece.start):
                continue
            source = _whole_file(piece, folder / f"{n}.ndjson")
            records = con.sql(q("event_slices_as_records"),
                              params={"path": str(source), "file": str(piece.path), "byte_offset": piece.start})
            try:
                with inputs(con, input_event_records=records):
                    con.execute(q("parse_event_records"), {"raw_limit": raw_limit})
            except duckdb.Error:  # a line DuckDB cannot read: the block reader says which and why
                continue
            finally:
                if source != piece.path:
                    source.unlink(missing_ok=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    staged = {}
    for file, rows, rejected in con.execute(q("fast_staged_files")).fetchall():
        if rejected:
            con.execute(q("unstage_file"), {"file": file})
        else:
            staged[file] = rows
    return staged


def _whole_file(piece: Slice, copy: Path) -> Path:
    """The file itself when the slice is all of it, else a copy of the slice's bytes."""
    if piece.start == 0 and piece.end == piece.path.stat().st_size:
        return piece.path
    with piece.path.open("rb") as src, copy.open("wb") as dst:
        src.seek(piece.start)
        left = piece.end - piece.start
        while left > 0:
            chunk = src.read(min(COPY_BYTES, left))
            if not chunk:
                break
            dst.write(chunk)
            left -= len(chunk)
    return copy
