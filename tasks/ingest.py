"""Ingest subscribers: read a file, normalise, check each row, upsert good rows, quarantine the rest."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from tasks.sqlfiles import q
from tasks.validate import check_addresses
from tasks.warehouse import connect, inputs, transaction

KNOWN_COLUMNS = ("email", "first_name", "last_name")
CONTROL_CHARS = r"[\x00-\x08\x0b-\x1f\x7f]|[\r\n]"


@dataclass(frozen=True)
class IngestResult:
    source: str
    batch_id: str
    rows_read: int
    accepted: int
    updated: int
    unchanged: int
    quarantined: int
    already_ingested: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def read_subscribers(path: Path) -> pl.DataFrame:
    """Every field as text plus `line` (the record's line in the file) and `raw` (its fields)."""
    if not path.is_file():
        raise MailflowError(f"{path}: no such file")
    separator = "\t" if path.name.endswith((".tsv", ".tsv.gz")) else ","
    try:
        df = pl.read_csv(path, infer_schema=False, separator=separator, encoding="utf8")
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError) as exc:
        raise MailflowError(f"{path}: not a readable CSV file ({str(exc).splitlines()[0]})") from None
    df = df.rename({c: c.strip().lower().replace(" ", "_").replace("-", "_") for c in df.columns})
    if "email" not in df.columns:
        raise MailflowError(f"{path}: no email column (columns are: {', '.join(df.columns)})")
    raw = pl.struct(pl.all()).struct.json_encode()
    return df.with_columns(raw=raw).with_row_index("line", offset=2).with_columns(pl.col("line").cast(pl.Int64))


def normalise(df: pl.DataFrame) -> pl.DataFrame:
    """Trim every text field; attributes are the columns mailflow has no column for."""
    fields = [c for c in df.columns if c not in ("line", "raw")]
    df = df.with_columns(pl.col(fields).str.strip_chars())
    for column in KNOWN_COLUMNS:
        if column not in df.columns:
            df = df.with_columns(pl.lit(None, pl.String).alias(column))
    extra = [c for c in fields if c not in KNOWN_COLUMNS]
    attributes = pl.struct(extra).struct.json_encode() if extra else pl.lit("{}")
    return df.with_columns(email_original=pl.col("email"), attributes=attributes)


def split_rows(df: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows, quarantined rows with a reason). Within a file the last row of an address wins."""
    fields = [c for c in df.columns if c not in ("line", "raw", "email_original", "attributes")]
    bad_field = pl.coalesce(
        [pl.when(pl.col(c).str.contains(CONTROL_CHARS)).then(pl.lit(f"control_characters: field {c}")) for c in fields]
    )
    df = check_addresses(df.with_columns(field_error=bad_field))
    df = df.with_columns(reason=pl.coalesce("field_error", "email_error"))
    good = df.filter(pl.col("reason").is_null())
    good = good.with_columns(last_line=pl.col("line").max().over("email_ok"))
    superseded = good.filter(pl.col("line") != pl.col("last_line")).with_columns(
        reason=pl.format("duplicate: superseded by line {}", pl.col("last_line"))
    )
    good = good.filter(pl.col("line") == pl.col("last_line"))
    bad = pl.concat([df.filter(pl.col("reason").is_not_null()), superseded.drop("last_line")])
    good = good.select(
        email=pl.col("email_ok"), email_original="email_original",
        first_name="first_name", last_name="last_name", attributes="attributes",
    )
    return good, bad.select("line", "reason", "raw").sort("line")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def upsert(
    con: duckdb.DuckDBPyConnection, source: str, sha: str, good: pl.DataFrame, bad: pl.DataFrame,
    list_name: str | None,
) -> IngestResult:
    """One transaction: new rows inserted, changed rows updated, bad rows quarantined, batch recorded."""
    previous = con.execute(q("find_batch"), {"sha": sha, "list_name": list_name}).fetchone()
    rows_read = good.height + bad.height
    if previous:
        return IngestResult(source, previous[0], rows_read, 0, 0, good.height, bad.height, already_ingested=True)
    batch_id = uuid.uuid4().hex
    with inputs(con, input_subscribers=good, input_quarantine=bad), transaction(con):
        accepted, updated, unchanged = con.execute(q("classify_input_subscribers")).fetchone()
        con.execute(q("upsert_subscribers"))
        if list_name:
            con.execute(q("ensure_list"), {"name": list_name})
            con.execute(q("add_list_members"), {"name": list_name})
        con.execute(q("insert_quarantine"), {"batch_id": batch_id, "source": source})
        result = IngestResult(source, batch_id, rows_read, accepted, updated, unchanged, bad.height)
        counts = {k: v for k, v in result.as_dict().items() if k != "already_ingested"}
        con.execute(q("record_batch"), counts | {"sha": sha, "list_name": list_name})
    return result


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, list_name: str | None = None) -> IngestResult:
    """The whole stage for one file, as plain calls."""
    frame = normalise(read_subscribers(path))
    good, bad = split_rows(frame)
    return upsert(con, str(path), file_sha256(path), good, bad, list_name)


@task(name="ingest_file", cache_policy=NO_CACHE)
def ingest_file_task(settings: Settings, path: Path, list_name: str | None = None) -> dict:
    with connect(settings.warehouse) as con:
        return ingest_file(con, path, list_name).as_dict()
