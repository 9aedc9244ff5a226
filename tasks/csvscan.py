"""CSV records at speed: a quote-aware record scanner (NumPy) feeding Polars, with the csv module as reference.

Polars parses fields fast but says nothing of where a record came from. Quarantine needs
each row's line number and original text, so a vectorised scan finds the record boundaries
(newlines outside quotes), line numbers and field counts; Polars parses the same bytes; the
two must agree on the record count, else the region is parsed again by Python's csv module,
which is exact but slower. Tests check both paths give the same rows.
"""

from __future__ import annotations

import csv
import sys
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

QUOTE, NEWLINE, CR = 0x22, 0x0A, 0x0D
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long fields are judged by the row checks, not here


@dataclass
class Region:
    """Whole records of a CSV body: `fields` per record, plus where each began."""

    frame: pl.DataFrame           # one String column per header field, one row per record
    lines: np.ndarray             # 1-based line where each record starts
    raw: list[str] | None         # each record's text (csv path) or None (fast path: sliced on demand)
    field_counts: np.ndarray      # fields found in each record
    blank: np.ndarray             # records that are empty lines
    starts: np.ndarray | None = None
    ends: np.ndarray | None = None
    data: bytes = b""

    def raw_text(self, rows) -> list[str]:
        if self.raw is not None:
            return [self.raw[i] for i in rows]
        return [self.data[self.starts[i]: self.ends[i]].decode("utf-8", "replace").rstrip("\r") for i in rows]

    def raw_bytes(self, row: int) -> bytes:
        if self.raw is not None:
            return self.raw[row].encode("utf-8")
        return self.data[self.starts[row]: self.ends[row]]

    def sizes(self) -> np.ndarray:
        """Bytes of each record without its line end."""
        if self.raw is not None:
            return np.array([len(r.encode("utf-8")) for r in self.raw], dtype=np.int64)
        width = self.ends - self.starts
        a = np.frombuffer(self.data, dtype=np.uint8)
        return width - ((width > 0) & (a[np.maximum(self.ends - 1, 0)] == CR))

    def identity(self) -> pl.Series:
        """Each record's bytes (the fast path: a zero-copy view of the region), to find identical records."""
        if self.raw is not None:
            return pl.Series(self.raw, dtype=pl.String)
        offsets = np.append(self.starts, len(self.data)).astype(np.int64)
        buffers = [None, pa.py_buffer(offsets), pa.py_buffer(self.data)]
        return pl.Series(pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(self.starts), buffers))


def record_ends(data: bytes) -> np.ndarray:
    """Offsets of newlines that end a record: those with an even number of quotes before them."""
    a = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(a == NEWLINE)
    quotes = np.flatnonzero(a == QUOTE)
    if quotes.size == 0:
        return newlines
    return newlines[(np.searchsorted(quotes, newlines) & 1) == 0]


def split_at_last_record(data: bytes) -> int:
    """Length of the prefix of `data` that holds only whole records (0 if none ends)."""
    ends = record_ends(data)
    return int(ends[-1]) + 1 if ends.size else 0


_SPACE_OR_NON_ASCII = np.zeros(256, dtype=bool)
_SPACE_OR_NON_ASCII[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
_SPACE_OR_NON_ASCII[0x80:] = True


def _blank_records(data: bytes, a: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Records that are empty or only whitespace (as str.strip sees it, like the reference parser).

    Only a record whose first and last bytes are both whitespace or non-ASCII (U+3000 is
    whitespace too) can be blank; those few are decided in Python, the rest by two lookups."""
    width = ends - starts
    first = a[np.minimum(starts, len(a) - 1)]
    last = a[np.maximum(ends - 1, 0)]
    blank = width == 0
    maybe = (width > 0) & _SPACE_OR_NON_ASCII[first] & _SPACE_OR_NON_ASCII[last]
    for i in np.flatnonzero(maybe):
        blank[i] = data[starts[i]:ends[i]].decode("utf-8", "replace").strip() == ""
    return blank


def parse_region(data: bytes, columns: list[str], delimiter: str, first_line: int) -> Region:
    """Parse whole records (data ends with a newline or is the file's last record)."""
    if not data:
        return parse_region_reference("", columns, delimiter, first_line)
    a = np.frombuffer(data, dtype=np.uint8)
    ends = record_ends(data)
    if not data.endswith(b"\n"):
        ends = np.append(ends, len(data))
    starts = np.concatenate(([0], ends[:-1] + 1)).astype(np.int64)
    newlines = np.flatnonzero(a == NEWLINE)
    lines = first_line + np.searchsorted(newlines, starts)
    quotes = np.flatnonzero(a == QUOTE)
    delims = np.flatnonzero(a == ord(delimiter))
    if quotes.size:
        delims = delims[(np.searchsorted(quotes, delims) & 1) == 0]
    counts = np.searchsorted(delims, ends) - np.searchsorted(delims, starts) + 1
    blank = _blank_records(data, a, starts, ends)
    frame = _polars(data, columns, delimiter)
    if frame is None or frame.height != len(starts):
        return parse_region_reference(data.decode("utf-8", "replace"), columns, delimiter, first_line)
    return Region(_empty_is_null(frame), lines, None, counts, blank, starts, ends, data)


def _empty_is_null(frame: pl.DataFrame) -> pl.DataFrame:
    """`a,,b` and `a,"",b` both mean "no value", whichever parser read them."""
    return frame.with_columns(pl.when(pl.all().str.len_bytes() > 0).then(pl.all()).name.keep())


def _polars(data: bytes, columns: list[str], delimiter: str) -> pl.DataFrame | None:
    try:
        return pl.read_csv(
            data, has_header=False, separator=delimiter, quote_char='"', encoding="utf8-lossy",
            schema={c: pl.String for c in columns}, truncate_ragged_lines=True, raise_if_empty=False,
        )
    except pl.exceptions.PolarsError:  # any disagreement: the reference parser decides
        return None


def parse_region_reference(text: str, columns: list[str], delimiter: str, first_line: int) -> Region:
    """The exact path: Python's csv module, tracking the physical lines each record spans."""
    physical = text.split("\n")
    if physical and physical[-1] == "":
        physical.pop()
    position = 0

    def feed():
        nonlocal position
        while position < len(physical):
            position += 1
            yield physical[position - 1] + "\n"

    reader = csv.reader(feed(), delimiter=delimiter, quotechar='"', strict=False)
    rows, lines, raws = [], [], []
    while True:
        start = position
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error:  # the record cannot be parsed at all: zero fields, quarantined as ragged
            row = []
        rows.append(row)
        lines.append(first_line + start)
        raws.append("\n".join(physical[start:position]).rstrip("\r"))
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    blank = np.array([raw.strip() == "" for raw in raws], dtype=bool)
    counts[blank] = 1
    width = len(columns)
    padded = [(r + [None] * width)[:width] for r in rows]
    frame = pl.DataFrame({c: [r[i] for r in padded] for i, c in enumerate(columns)}, schema={c: pl.String for c in columns})
    return Region(_empty_is_null(frame), np.array(lines, dtype=np.int64), raws, counts, blank)
