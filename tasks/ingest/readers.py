"""Read subscriber files — CSV/TSV, Parquet, JSON, NDJSON, gzipped or not — as batches of text rows."""

from __future__ import annotations

import codecs
import csv
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl

from mailflow.errors import MailflowError
from mailflow.tasks.ingest import structured
from mailflow.tasks.ingest.bounds import (
    MAX_RECORD_BYTES,
    LongRecord,
    check_width,
    long_record,
    open_binary,
    representatives,
    skip_long_record,
    text_encoding,
    too_long_reason,
)
from mailflow.tasks.ingest.csvscan import Region, parse_region, record_ends, split_at_last_record
from mailflow.tasks.ingest.rows import Batch, Rejected, header_names

BATCH_BYTES = 32 << 20  # ≈300k rows of a 10-column export: ≈1 GB of working memory while screened
DELIMITERS = ",;\t|"
MAX_BAD_ENCODING = 0.01  # more records than this share of invalid UTF-8: the file is in another encoding


def detect_format(path: Path, head: bytes) -> str:
    name = path.name.lower().removesuffix(".gz")
    for suffix, kind in ((".parquet", "parquet"), (".pq", "parquet"), (".ndjson", "ndjson"), (".jsonl", "ndjson"),
                         (".json", "json"), (".tsv", "tsv"), (".tab", "tsv"), (".csv", "csv"), (".txt", "csv")):
        if name.endswith(suffix):
            return kind
    if head.startswith(b"PAR1"):
        return "parquet"
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if stripped.startswith(b"[") else "ndjson" if stripped.startswith(b"{") else "csv"


def read_batches(path: Path, encoding: str | None = None, delimiter: str | None = None,
                 batch_bytes: int = BATCH_BYTES) -> tuple[list[str], Iterator[Batch]]:
    """(original header names, batches). Raises MailflowError for a file that cannot be read at all."""
    encoding = text_encoding(encoding)
    fh = open_binary(path)
    try:
        head = fh.peek(4096)[:4096] if hasattr(fh, "peek") else b""
        kind = detect_format(path, head)
        if kind in ("parquet", "json", "ndjson"):
            if kind == "parquet":
                return structured.parquet(path, fh)
            reader = structured.json_array if kind == "json" else structured.ndjson
            return reader(path, fh, _transcoder(encoding), batch_bytes)
        return _csv(path, fh, encoding, "\t" if kind == "tsv" and not delimiter else delimiter, batch_bytes)
    except (OSError, EOFError, zlib.error) as exc:
        fh.close()
        raise MailflowError(f"{path}: cannot read ({exc})") from None
    except BaseException:
        fh.close()
        raise


def _transcoder(encoding: str | None) -> Callable[[bytes, bool], bytes]:
    """Bytes in the file's encoding -> UTF-8 bytes (identity for UTF-8)."""
    if not encoding or codecs.lookup(encoding).name == "utf-8":
        return lambda data, final: data
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return lambda data, final: decoder.decode(data, final).encode("utf-8")


def _csv(path: Path, fh, encoding: str | None, delimiter: str | None, batch_bytes: int):
    to_utf8 = _transcoder(encoding)
    buffer, eof = b"", False
    ends = np.array([], dtype=np.int64)
    while not eof and not ends.size and len(buffer) <= MAX_RECORD_BYTES + 1:  # the header, and no more than it may be
        more = fh.read(1 << 20)
        eof = not more
        buffer += to_utf8(more, eof)
        ends = record_ends(buffer)
    if buffer.startswith(codecs.BOM_UTF8):  # no quote or newline in it: the ends only move
        buffer, ends = buffer[3:], ends - 3
    if not buffer.strip():
        fh.close()
        raise MailflowError(f"{path}: the file is empty (a header row with an email column is needed)")
    header_end = int(ends[0]) + 1 if ends.size else len(buffer)
    if header_end - (1 if ends.size else 0) > MAX_RECORD_BYTES:
        fh.close()
        raise MailflowError(f"{path}: the header line is longer than the limit of {MAX_RECORD_BYTES:,} bytes")
    header_text = _decode_or_fail(path, buffer[:header_end], 1, encoding)
    if delimiter is None:
        delimiter = _sniff(header_text)
    raw_header = next(csv.reader([header_text.rstrip("\r\n")], delimiter=delimiter), [])
    check_width(path, len(raw_header), hint=" (is the delimiter right?)")
    columns = header_names(raw_header)
    first_line = 1 + buffer[:header_end].count(b"\n") + (0 if buffer[:header_end].endswith(b"\n") else 1)
    buffer = buffer[header_end:]

    def read(size: int) -> bytes:
        nonlocal eof
        if eof:
            return b""
        more = fh.read(size)
        eof = not more
        return to_utf8(more, eof)

    def batches() -> Iterator[Batch]:
        nonlocal buffer
        line = first_line
        try:
            while buffer or not eof:
                if not eof and len(buffer) < batch_bytes:
                    buffer += read(batch_bytes)
                    continue
                cut = len(buffer) if eof else split_at_last_record(buffer)
                if cut == 0 and len(buffer) <= MAX_RECORD_BYTES + 1:  # one record longer than a batch: read on
                    buffer += read(max(batch_bytes, len(buffer)))
                    continue
                if cut == 0:  # longer than any row may be: step over it without holding it
                    record, buffer = skip_long_record(buffer, lambda: read(1 << 20), line, quoted=True)
                    yield _long_record_batch(columns, record)
                    line += record.newlines + 1
                    continue
                region, buffer = buffer[:cut], buffer[cut:]
                yield _csv_batch(path, region, columns, delimiter, line, encoding)
                line += region.count(b"\n")
        finally:
            fh.close()

    return raw_header, batches()


def _long_record_batch(columns: list[str], record: LongRecord) -> Batch:
    frame = pl.DataFrame(schema={**{c: pl.String for c in columns}, "line": pl.Int64})
    return Batch(frame, lambda rows: [], [Rejected(record.line, too_long_reason(record.size), record.raw, 1, record.sha256)])


def _csv_batch(path: Path, data: bytes, columns: list[str], delimiter: str, line: int, encoding: str | None) -> Batch:
    region = parse_region(data, columns, delimiter, line)
    bad_utf8 = np.zeros(len(region.lines), dtype=bool)
    bad_utf8[_invalid_utf8_rows(path, data, region, encoding)] = True
    rep, first, copies = representatives(region.identity(), np.flatnonzero(~region.blank))
    too_long = region.sizes()[rep] > MAX_RECORD_BYTES
    ragged = region.field_counts[rep] != len(columns)
    refused = too_long | ragged | bad_utf8[rep]
    rejected: list[Rejected] = []
    for j in np.flatnonzero(refused):
        i, at, n = int(rep[j]), int(region.lines[first[j]]), int(copies[j])
        if too_long[j]:
            record = long_record(region.raw_bytes(i), at)
            rejected.append(Rejected(at, too_long_reason(record.size), record.raw, n, record.sha256))
        elif ragged[j]:
            rejected.append(Rejected(at, f"ragged_row: {int(region.field_counts[i])} fields where the header has "
                                     f"{len(columns)}", region.raw_text([i])[0], n))
        else:
            rejected.append(Rejected(at, "invalid_utf8: bytes that are not UTF-8 (pass --encoding if the file is in "
                                     "another encoding)", region.raw_text([i])[0], n))
    keep = np.flatnonzero(~refused)
    rows = rep[keep]
    frame = region.frame.with_columns(line=pl.Series(region.lines, dtype=pl.Int64))
    if rows.size != frame.height:
        frame = frame[pl.Series(rows)]
    return Batch(frame, lambda idx, r=region, p=rows: r.raw_text([int(p[i]) for i in idx]), rejected,
                 copies[keep], region.lines[first[keep]])


def _invalid_utf8_rows(path: Path, data: bytes, region: Region, encoding: str | None) -> np.ndarray:
    """Records holding bytes that are not UTF-8; too many of them mean a wrong encoding: stop."""
    try:
        data.decode("utf-8")
        return np.array([], dtype=np.int64)
    except UnicodeDecodeError:
        pass
    if region.starts is not None:
        bad = [i for i in range(len(region.lines)) if not _is_utf8(data[region.starts[i]: region.ends[i]])]
    else:  # the reference parser decoded with replacement characters
        bad = [i for i, raw in enumerate(region.raw or []) if "\ufffd" in raw]
    if len(bad) > max(10, MAX_BAD_ENCODING * len(region.lines)):
        raise MailflowError(
            f"{path}: line {int(region.lines[bad[0]])} is not valid UTF-8, nor are {len(bad) - 1} other rows; "
            "pass --encoding (for example cp1252, latin-1 or shift_jis)"
        )
    return np.array(bad, dtype=np.int64)


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _decode_or_fail(path: Path, data: bytes, line: int, encoding: str | None) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise MailflowError(f"{path}: line {line} is not valid UTF-8; pass --encoding (for example cp1252 or shift_jis)") from None


def _sniff(header: str) -> str:
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","
