"""Read structured subscriber files — Parquet, a JSON array, NDJSON — as batches of text rows."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from mailflow.errors import MailflowError
from tasks.readers import BATCH_ROWS, Batch, header_names


def _rows_batch(records: list[tuple[int, object, str]], path: Path) -> Batch:
    """Batch from parsed JSON records: (line, value, raw text)."""
    rows, lines, raws, rejected = [], [], [], []
    for line, value, raw in records:
        if not isinstance(value, dict):
            rejected.append((line, "structure", "not_an_object: each record must be a JSON object", raw))
            continue
        rows.append({header_names([str(k)])[0]: _text(v) for k, v in value.items()})
        lines.append(line)
        raws.append(raw)
    columns = list(dict.fromkeys(k for r in rows for k in r))
    frame = pl.DataFrame({c: [r.get(c) for r in rows] for c in columns}, schema={c: pl.String for c in columns})
    frame = frame.with_columns(line=pl.Series(lines, dtype=pl.Int64))
    return Batch(frame, lambda idx: [raws[i] for i in idx], rejected)


def _text(value) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def json_array(path: Path, fh, encoding: str | None):
    with fh:
        data = fh.read()
    try:
        items = json.loads(data.decode(encoding or "utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MailflowError(f"{path}: not a JSON array of objects ({exc})") from None
    if not isinstance(items, list):
        raise MailflowError(f"{path}: not a JSON array of objects (the top level is {type(items).__name__})")
    records = [(i + 1, item, json.dumps(item, ensure_ascii=False)) for i, item in enumerate(items)]
    keys = [k for item in items if isinstance(item, dict) for k in item]
    return list(dict.fromkeys(keys)), iter([_rows_batch(records, path)])


def ndjson(path: Path, fh, encoding: str | None):
    reader = io.TextIOWrapper(fh, encoding=encoding or "utf-8-sig", errors="surrogateescape", newline="")
    first_keys: list[str] = []

    def batches() -> Iterator[Batch]:
        records: list[tuple[int, object, str]] = []
        bad: list[tuple[int, str, str, str]] = []
        with reader:
            for number, text in enumerate(reader, start=1):
                text = text.rstrip("\r\n")
                if not text.strip():
                    continue
                try:
                    records.append((number, json.loads(text), text))
                except json.JSONDecodeError as exc:
                    bad.append((number, "structure", f"invalid_json: {exc.msg} at column {exc.colno}",
                                text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")))
                if len(records) >= BATCH_ROWS:
                    batch = _rows_batch(records, path)
                    batch.rejected.extend(bad)
                    yield batch
                    records, bad = [], []
        batch = _rows_batch(records, path)
        batch.rejected.extend(bad)
        yield batch

    return first_keys, batches()


def parquet(path: Path, fh):
    try:
        parquet = pq.ParquetFile(fh)
    except Exception as exc:  # pyarrow raises several types for a damaged file
        fh.close()
        raise MailflowError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from None
    names = parquet.schema_arrow.names
    columns = header_names(names)

    def batches() -> Iterator[Batch]:
        offset = 0
        with fh:
            for record_batch in parquet.iter_batches(batch_size=BATCH_ROWS):
                frame = pl.from_arrow(record_batch).rename(dict(zip(names, columns)))
                frame = frame.select([_as_text(frame[c]) for c in columns])
                frame = frame.with_columns(line=pl.int_range(offset + 1, offset + 1 + frame.height, dtype=pl.Int64))
                offset += frame.height
                raw = frame.drop("line").select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()
                yield Batch(frame, lambda idx, r=raw: [r[i] for i in idx])

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
