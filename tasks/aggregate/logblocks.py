"""Append-only NDJSON logs read from a byte offset in blocks of whole lines, parsed fast when every line is a record."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

# A file is read in blocks, so memory stays bounded however far a log grew since the last run.
BLOCK_BYTES = 32 << 20


@dataclass(frozen=True)
class Block:
    file: str
    lines: bytes  # whole lines joined by newlines, without the last one
    offset: int  # where the first line starts in the file
    first_line: int  # its 1-based number
    tail: bool  # a last line without its newline, read because its writer stopped long ago
    end: int  # the offset after the block's last line

    def line_starts(self) -> np.ndarray | None:
        """Each line's start within `lines`; None when a line is blank (the fast readers cannot place those)."""
        newlines = np.flatnonzero(np.frombuffer(self.lines, dtype=np.uint8) == 10)
        starts = np.concatenate(([0], newlines + 1))
        ends = np.append(newlines, len(self.lines))
        return None if not self.lines or bool((ends - starts == 0).any()) else starts


def blocks(path: Path, start: int, first_line: int, stale: bool) -> Iterator[Block]:
    """The whole lines from `start`, a block at a time; a stale unfinished last line as a block of its own."""
    with path.open("rb") as fh:
        fh.seek(start)
        offset, line, carry = start, first_line, b""
        while chunk := fh.read(BLOCK_BYTES):
            data = carry + chunk
            cut = data.rfind(b"\n") + 1
            if cut:
                lines = data[:cut - 1]
                yield Block(str(path), lines, offset, line, False, offset + cut)
                offset, line = offset + cut, line + lines.count(b"\n") + 1
            carry = data[cut:]
        if carry and stale:
            yield Block(str(path), carry, offset, line, True, offset + len(carry))


def line_count(block: Block) -> int:
    return block.lines.count(b"\n") + 1


def read_records(block: Block, schema: dict[str, pl.DataType] | None = None) -> pl.DataFrame | None:
    """Every line of the block as a row (Polars' NDJSON reader: a tenth of a per-line JSON parse in SQL),
    with `file`, `byte_offset` and `line`; None when a line is blank, not a JSON object or of another
    shape than `schema` (or, without one, inconsistent), for the caller's line-by-line path."""
    starts = None if block.tail else block.line_starts()
    if starts is None:
        return None
    try:
        frame = pl.read_ndjson(block.lines, schema=schema, infer_schema_length=None)
    except Exception:  # noqa: BLE001 - Polars raises several kinds for a line it cannot take: read line by line
        return None
    if frame.height != len(starts):
        return None
    return frame.with_columns(file=pl.lit(block.file, dtype=pl.String),
                              byte_offset=pl.Series(starts, dtype=pl.Int64) + block.offset,
                              line=pl.int_range(block.first_line, block.first_line + frame.height, dtype=pl.Int64))


def lines_frame(block: Block) -> pl.DataFrame:
    """The block's lines as `input_event_lines`, one row each, for a per-line parse in SQL.

    Split and measured in Polars: a Python loop over the lines costs more than parsing them. A
    line that is not UTF-8 has no text; `undecodable` shows it with its bad bytes escaped.
    """
    try:
        text = pl.Series("text", [block.lines.decode()]).str.split("\n").explode()
        size = text.str.len_bytes().cast(pl.Int64) + 1
        undecodable = pl.Series("undecodable", [None] * text.len(), dtype=pl.String)
    except UnicodeDecodeError:
        split = block.lines.split(b"\n")
        text = pl.Series("text", [_utf8(b) for b in split], dtype=pl.String)
        size = pl.Series([len(b) + 1 for b in split], dtype=pl.Int64)
        undecodable = pl.Series("undecodable", [None if t is not None else b.decode("utf-8", "backslashreplace")
                                                for b, t in zip(split, text)], dtype=pl.String)
    n = text.len()
    return pl.DataFrame({
        "file": pl.repeat(block.file, n, dtype=pl.String, eager=True),
        "byte_offset": size.cum_sum() - size + block.offset,
        "line": pl.int_range(block.first_line, block.first_line + n, dtype=pl.Int64, eager=True),
        "tail": pl.repeat(block.tail, n, dtype=pl.Boolean, eager=True),
        "text": text,
        "undecodable": undecodable,
    })


def _utf8(line: bytes) -> str | None:
    try:
        return line.decode()
    except UnicodeDecodeError:
        return None
