"""Read structured subscriber files — Parquet, a JSON array, NDJSON — as batches of text rows, in bounded memory."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from mailflow.errors import MailflowError
from mailflow.tasks.ingest.bounds import (
    MAX_COLUMNS,
    MAX_RECORD_BYTES,
    LongRecord,
    check_width,
    long_record,
    representatives,
    skip_long_record,
    too_long_reason,
)
from mailflow.tasks.ingest.rows import BATCH_ROWS, Batch, Rejected, header_names

READ_STEP = 1 << 20
NOT_UTF8 = "invalid_utf8: bytes that are not UTF-8 (pass --encoding if the file is in another encoding)"
_SPACE = re.compile(r"[ \t\r\n]*")


class _Records:
    """One batch of parsed records, identical texts collapsed into one with a count (they screen alike)."""

    def __init__(self, path: Path):
        self.path, self.size = path, 0
        self.index: dict[bytes | str, int] = {}
        self.items: list[list] = []          # [first line, last line, copies, raw text, value, reason]
        self.long: list[Rejected] = []

    def add(self, line: int, key: bytes | str, raw: Callable[[], str], parse: Callable[[], tuple[object, str | None]]):
        at = self.index.get(key)
        if at is not None:
            item = self.items[at]
            item[1], item[2] = line, item[2] + 1
            return
        self.index[key] = len(self.items)
        self.items.append([line, line, 1, raw(), *parse()])
        self.size += len(key)

    def add_long(self, record: LongRecord) -> None:
        self.long.append(Rejected(record.line, too_long_reason(record.size), record.raw, 1, record.sha256))

    def full(self, batch_bytes: int) -> bool:
        return self.size >= batch_bytes or len(self.items) >= BATCH_ROWS

    def batch(self) -> Batch:
        rows, lines, raws, copies, firsts, rejected = [], [], [], [], [], list(self.long)
        try:
            for first, last, n, raw, value, reason in self.items:
                if reason is None and not isinstance(value, dict):
                    reason = "not_an_object: each record must be a JSON object"
                if reason is not None:
                    rejected.append(Rejected(first, reason, raw, n))
                    continue
                if len(value) > MAX_COLUMNS:
                    check_width(self.path, len(value), f"fields in the record at line {first}")
                rows.append({header_names([str(k)])[0]: _text(v) for k, v in value.items()})
                lines.append(last)
                raws.append(raw)
                copies.append(n)
                firsts.append(first)
        except RecursionError:  # a value nested just below the parser's limit, too deep to encode again
            raise MailflowError(f"{self.path}: line {first} is nested too deeply") from None
        columns = list(dict.fromkeys(k for r in rows for k in r))
        check_width(self.path, len(columns), "distinct fields in its records")
        frame = pl.DataFrame({c: [r.get(c) for r in rows] for c in columns}, schema={c: pl.String for c in columns})
        frame = frame.with_columns(line=pl.Series(lines, dtype=pl.Int64))
        return Batch(frame, lambda idx: [raws[i] for i in idx], rejected,
                     np.array(copies, dtype=np.int64), np.array(firsts, dtype=np.int64))


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _parse(text: str) -> tuple[object, str | None]:
    try:
        return json.loads(text), None
    except json.JSONDecodeError as exc:
        return None, f"invalid_json: {exc.msg} at column {exc.colno}"
    except RecursionError:  # one line is a record of its own: it alone is refused
        return None, "invalid_json: nested too deeply"


def _reader(fh, to_utf8: Callable[[bytes, bool], bytes]) -> Callable[[], bytes]:
    """Next piece of the file as UTF-8 (b"" at the end), a BOM dropped."""
    state = {"eof": False, "first": True}

    def read() -> bytes:
        if state["eof"]:
            return b""
        more = fh.read(READ_STEP)
        state["eof"] = not more
        data = to_utf8(more, not more)
        if state["first"]:
            state["first"] = False
            data = data.removeprefix(codecs.BOM_UTF8)
        return data

    return read


def _lines(read: Callable[[], bytes]) -> Iterator[tuple[int, bytes | LongRecord]]:
    """(line number, line without its end) — a line over the limit is summarised in passing, never held."""
    buffer, number = b"", 0
    while True:
        chunk = read()
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            number += 1
            yield number, (long_record(line, number) if len(line.rstrip(b"\r")) > MAX_RECORD_BYTES else line)
        if not chunk:
            if buffer:
                number += 1
                yield number, (long_record(buffer, number) if len(buffer.rstrip(b"\r")) > MAX_RECORD_BYTES else buffer)
            return
        if len(buffer) > MAX_RECORD_BYTES + 1:
            record, buffer = skip_long_record(buffer, read, number + 1, quoted=False)
            number += 1
            yield number, record


def ndjson(path: Path, fh, to_utf8, batch_bytes: int):
    def batches() -> Iterator[Batch]:
        records = _Records(path)
        with fh:
            for number, line in _lines(_reader(fh, to_utf8)):
                if isinstance(line, LongRecord):
                    records.add_long(line)
                    continue
                line = line.rstrip(b"\r")
                if not line.strip():
                    continue
                try:
                    text = line.decode("utf-8")
                except UnicodeDecodeError:
                    lossy = line.decode("utf-8", "replace")
                    records.add(number, line, lambda: lossy, lambda: (None, NOT_UTF8))  # noqa: B023 - add() calls them at once
                else:
                    records.add(number, line, lambda: text, lambda: _parse(text))  # noqa: B023 - add() calls them at once
                if records.full(batch_bytes):
                    yield records.batch()
                    records = _Records(path)
        yield records.batch()

    return [], batches()


def json_array(path: Path, fh, to_utf8, batch_bytes: int):
    """A JSON array read element by element (never the whole file): each element is a record, numbered from 1."""
    def batches() -> Iterator[Batch]:
        records = _Records(path)
        with fh:
            for number, value, raw in _elements(path, _reader(fh, to_utf8)):
                records.add(number, raw, lambda: raw, lambda: (value, None))  # noqa: B023 - add() calls them at once
                if records.full(batch_bytes):
                    yield records.batch()
                    records = _Records(path)
        yield records.batch()

    return [], batches()


def _elements(path: Path, read: Callable[[], bytes]) -> Iterator[tuple[int, object, str]]:
    """(number, value, source text) of each element of the top-level array, from a window of the text.

    An element's end is known only once it is parsed, so one longer than the limit stops the
    run (unlike an over-long CSV record or NDJSON line, which is quarantined)."""
    decode = codecs.getincrementaldecoder("utf-8")("strict")
    decoder = json.JSONDecoder()
    text, pos, eof = "", 0, False

    def fill() -> bool:
        nonlocal text, pos, eof
        if eof:
            return False
        data = read()
        eof = not data
        try:
            text, pos = text[pos:] + decode.decode(data, eof), 0
        except UnicodeDecodeError as exc:
            raise MailflowError(f"{path}: not a JSON array of objects (not valid UTF-8: {exc.reason})") from None
        return not eof or pos < len(text)

    def next_char() -> str:
        nonlocal pos
        while True:
            pos = _SPACE.match(text, pos).end()
            if pos < len(text):
                return text[pos]
            if not fill():
                return ""

    def fail(why: str):
        raise MailflowError(f"{path}: not a JSON array of objects ({why})")

    def too_long(number: int):
        raise MailflowError(f"{path}: element {number} of the JSON array is longer than the limit of "
                            f"{MAX_RECORD_BYTES:,} bytes")

    first = next_char()
    if first != "[":
        fail("the file is empty" if not first else f"it starts with {first!r}, not '['")
    pos += 1
    number = 0
    if next_char() == "]":
        pos += 1
    else:
        while True:
            number += 1
            while True:
                try:
                    value, end = decoder.raw_decode(text, pos)
                    after = _SPACE.match(text, end).end()  # `0` of `0.5` cut at the window's edge: see what follows
                    if eof or (after < len(text) and (text[after] in ",]" or after < len(text) - 16)):
                        break
                except json.JSONDecodeError as exc:
                    near_end = exc.pos >= len(text) - 16 or exc.msg.startswith("Unterminated string")
                    if eof or not near_end:
                        fail(f"{exc.msg} in element {number}")
                except RecursionError:
                    raise MailflowError(f"{path}: element {number} of the JSON array is nested too deeply") from None
                if len(text) - pos > MAX_RECORD_BYTES:
                    too_long(number)
                fill()
            raw = text[pos:end]
            if len(raw) * 4 > MAX_RECORD_BYTES and len(raw.encode("utf-8")) > MAX_RECORD_BYTES:
                too_long(number)
            yield number, value, raw
            pos = end
            after = next_char()
            if after == "]":
                pos += 1
                break
            if after != ",":
                fail(f"expected ',' or ']' after element {number}")
            pos += 1
            next_char()
    if next_char():
        fail("more data after the closing ']'")


def parquet(path: Path, fh):
    try:
        parquet = pq.ParquetFile(fh)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        fh.close()
        raise MailflowError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    names = parquet.schema_arrow.names
    check_width(path, len(names))
    columns = header_names(names)

    def batches() -> Iterator[Batch]:
        offset = 0
        with fh:
            for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                frame = pl.from_arrow(record_batch).rename(dict(zip(names, columns)))
                frame = frame.select([_as_text(frame[c]) for c in columns])
                frame = frame.with_columns(line=pl.int_range(offset + 1, offset + 1 + frame.height, dtype=pl.Int64))
                offset += frame.height
                raw = frame.drop("line").select(pl.struct(pl.all()).struct.json_encode()).to_series()
                last, first, copies = representatives(raw, np.arange(frame.height))
                if last.size != frame.height:
                    frame = frame[pl.Series(last)]
                lines = frame["line"].to_numpy()
                yield Batch(frame, lambda idx, r=raw, p=last: r.gather(pl.Series(p[list(idx)], dtype=pl.Int64)).to_list(),
                            [], copies, lines - (last - first))

    return names, batches()


def _as_text(series: pl.Series) -> pl.Series:
    if series.dtype == pl.String:
        return series
    if series.dtype.is_nested():
        return series.to_frame().select(pl.col(series.name).struct.json_encode() if series.dtype == pl.Struct
                                        else pl.col(series.name).cast(pl.String, strict=False)).to_series()
    if series.dtype == pl.Boolean:
        return series.cast(pl.String).str.to_lowercase()
    return series.cast(pl.String, strict=False)
