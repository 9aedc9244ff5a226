"""Read subscriber files — CSV/TSV, Parquet, JSON, NDJSON, gzipped or not — as batches of text rows."""

from __future__ import annotations

import codecs
import csv
import io
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from mailflow.errors import MailflowError
from tasks.csvscan import Region, parse_region, record_ends, split_at_last_record

BATCH_BYTES = 32 << 20  # ≈300k rows of a 10-column export: ≈1 GB of working memory while screened
BATCH_ROWS = 500_000
DELIMITERS = ",;\t|"
MAX_BAD_ENCODING = 0.01  # more records than this share of invalid UTF-8: the file is in another encoding


@dataclass
class Batch:
    """Rows of one file as text: `frame` has one column per field plus `line`; `rejected` rows failed to parse."""

    frame: pl.DataFrame
    raw: Callable[[list[int]], list[str]]          # original text of rows, by position in `frame`
    rejected: list[tuple[int, str, str, str]] = field(default_factory=list)  # (line, rule, reason, raw)


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


def open_binary(path: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed if it is gzip (by content, not by name)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise MailflowError(f"{path}: no such file") from None
    except OSError as exc:
        raise MailflowError(f"{path}: cannot open ({exc.strerror})") from None
    if fh.peek(2)[:2] == b"\x1f\x8b":
        return io.BufferedReader(_Gunzip(fh), buffer_size=1 << 20)
    return fh


class _Gunzip(io.RawIOBase):
    """gzip decompression that notices a truncated stream (GzipFile.read(n) just stops short)."""

    def __init__(self, fh):
        self._fh, self._buffer = fh, b""
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        while len(self._buffer) < len(target):
            compressed = self._fh.read(1 << 20)
            if not compressed:
                if not self._inflate.eof:
                    raise EOFError("the gzip stream ends early (the file is truncated)")
                break
            self._buffer += self._inflate.decompress(compressed)
            while self._inflate.eof and self._inflate.unused_data:  # a multi-member gzip file
                rest = self._inflate.unused_data
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                self._buffer += self._inflate.decompress(rest)
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size

    def close(self) -> None:
        self._fh.close()
        super().close()


def header_names(raw: list[str]) -> list[str]:
    """Lower-case identifiers: `E-Mail Address` -> `e_mail_address`; blanks and repeats made unique."""
    names: list[str] = []
    for i, name in enumerate(raw):
        clean = re.sub(r"[^0-9a-z]+", "_", unicodedata.normalize("NFKC", name or "").strip().lower()).strip("_")
        clean = clean or f"column_{i + 1}"
        while clean in names:
            clean += "_2"
        names.append(clean)
    return names


def read_batches(path: Path, encoding: str | None = None, delimiter: str | None = None,
                 batch_bytes: int = BATCH_BYTES) -> tuple[list[str], Iterator[Batch]]:
    """(original header names, batches). Raises MailflowError for a file that cannot be read at all."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise MailflowError(f"--encoding {encoding!r} is not an encoding Python knows") from None
    fh = open_binary(path)
    try:
        head = fh.peek(4096)[:4096] if hasattr(fh, "peek") else b""
        kind = detect_format(path, head)
        if kind in ("parquet", "json", "ndjson"):
            from tasks import readers_structured as structured  # imports this module: import late

            if kind == "parquet":
                return structured.parquet(path, fh)
            return structured.json_array(path, fh, encoding) if kind == "json" else structured.ndjson(path, fh, encoding)
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
    buffer = to_utf8(fh.read(min(batch_bytes, 1 << 20)), False)  # enough for the header; batches follow
    if buffer.startswith(codecs.BOM_UTF8):
        buffer = buffer[3:]
    if not buffer.strip():
        fh.close()
        raise MailflowError(f"{path}: the file is empty (a header row with an email column is needed)")
    ends = record_ends(buffer)
    header_end = int(ends[0]) + 1 if ends.size else len(buffer)
    header_text = _decode_or_fail(path, buffer[:header_end], 1, encoding)
    if delimiter is None:
        delimiter = _sniff(header_text)
    raw_header = next(csv.reader([header_text.rstrip("\r\n")], delimiter=delimiter), [])
    columns = header_names(raw_header)
    first_line = 1 + buffer[:header_end].count(b"\n") + (0 if buffer[:header_end].endswith(b"\n") else 1)
    buffer = buffer[header_end:]

    def batches() -> Iterator[Batch]:
        nonlocal buffer
        line = first_line
        eof = False
        try:
            while buffer or not eof:
                if not eof and len(buffer) < batch_bytes:
                    more = fh.read(batch_bytes)
                    eof = not more
                    buffer += to_utf8(more, eof)
                    continue
                cut = len(buffer) if eof else split_at_last_record(buffer)
                if cut == 0:  # one record longer than a batch: read on
                    more = fh.read(batch_bytes)
                    eof = not more
                    buffer += to_utf8(more, eof)
                    continue
                region, buffer = buffer[:cut], buffer[cut:]
                yield _csv_batch(path, region, columns, delimiter, line, encoding)
                line += region.count(b"\n")
        finally:
            fh.close()

    return raw_header, batches()


def _csv_batch(path: Path, data: bytes, columns: list[str], delimiter: str, line: int, encoding: str | None) -> Batch:
    region = parse_region(data, columns, delimiter, line)
    keep = ~region.blank
    rejected: list[tuple[int, str, str, str]] = []
    bad_utf8 = _invalid_utf8_rows(path, data, region, encoding)
    ragged = np.flatnonzero(keep & (region.field_counts != len(columns)))
    for i in ragged:
        rejected.append((int(region.lines[i]), "structure",
                         f"ragged_row: {int(region.field_counts[i])} fields where the header has {len(columns)}",
                         region.raw_text([i])[0]))
    for i in bad_utf8:
        rejected.append((int(region.lines[i]), "encoding", "invalid_utf8: bytes that are not UTF-8 "
                         "(pass --encoding if the file is in another encoding)", region.raw_text([i])[0]))
    keep[ragged] = False
    keep[bad_utf8] = False
    positions = np.flatnonzero(keep)
    frame = region.frame.with_columns(line=pl.Series(region.lines, dtype=pl.Int64), _pos=pl.int_range(pl.len()))
    frame = frame.filter(pl.Series(keep))
    return Batch(frame.drop("_pos"), lambda rows, r=region, p=positions: r.raw_text([int(p[i]) for i in rows]), rejected)


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
