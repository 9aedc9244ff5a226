"""Screen one batch of subscriber rows: every check in one pass, each failing row with its rule and reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import polars as pl

from mailflow.errors import MailflowError
from mailflow.tasks.core.rules import Rule, blocked_by
from mailflow.tasks.core.validate import address_flags, check_addresses, field_errors
from mailflow.tasks.ingest.bounds import sha256_text, shorten
from mailflow.tasks.ingest.expectations import Validation, validate
from mailflow.tasks.ingest.normalise import Mapping_, idna_domains, normalise, parse_timestamps, rename_columns
from mailflow.tasks.ingest.optouts import OPT_OUT_SCHEMA, mark_opt_outs, note_opt_outs, opt_out_rows
from mailflow.tasks.ingest.readers import Batch, header_names

SUBSCRIBER_COLUMNS = ["line", "email", "email_original", "first_name", "last_name", "status", "opted_in_at",
                      "consent_source", "double_opt_in", "is_role_account", "is_disposable", "needs_smtputf8", "attributes"]
QUARANTINE_SCHEMA = {"line": pl.Int64, "rule": pl.String, "reason": pl.String, "raw": pl.String,
                     "raw_sha256": pl.String, "count": pl.Int64}


@dataclass(frozen=True)
class ScreenOptions:
    mapping: Mapping_ = field(default_factory=Mapping_)
    rules: tuple[Rule, ...] = ()
    reject_role_accounts: bool = False
    reject_disposable: bool = False
    domain_verdicts: Callable[[list[str]], dict[str, str | None]] | None = None  # domain -> reason or None


@dataclass(frozen=True)
class Screened:
    good: pl.DataFrame          # SUBSCRIBER_COLUMNS, one row per address (the file's last row wins)
    bad: pl.DataFrame           # QUARANTINE_SCHEMA: one row per (rule, text), `count` the rows it stands for
    validation: Validation | None
    opt_outs: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=OPT_OUT_SCHEMA))  # kept or not

    @property
    def rows(self) -> int:
        """Rows of the file this batch read: accepted or quarantined, each copy counted."""
        return self.good.height + int(self.bad["count"].sum() or 0)


def screen(batch: Batch, raw_header: list[str], options: ScreenOptions, now: datetime) -> Screened:
    if not batch.frame.height:  # nothing parsed, perhaps rows refused by the reader
        nothing = pl.DataFrame(schema={"_pos": pl.Int64, "line": pl.Int64, "reason": pl.String})
        return Screened(pl.DataFrame(schema=dict.fromkeys(SUBSCRIBER_COLUMNS, pl.String)),
                        _quarantine_rows(batch, nothing), None)
    frame = rename_columns(batch.frame, raw_header, options.mapping).with_columns(_pos=pl.int_range(pl.len()))
    require_email_column(frame.columns)
    fields = [c for c in frame.columns if c not in ("line", "_pos")]
    frame = field_errors(frame, fields)                     # on the text as it came
    frame = idna_domains(normalise(frame, options.mapping, fields))
    frame = mark_opt_outs(frame).with_columns(
        pl.col("double_opt_in").str.to_lowercase(),
        opted_in_ts=parse_timestamps(frame["opted_in_at"]),
    ).with_columns(
        consent_error=pl.when(pl.col("opted_in_at").is_not_null() & pl.col("opted_in_ts").is_null())
        .then(pl.lit("bad_value: field opted_in_at is not a date or date-time")),
    ).with_columns(opted_in_at=pl.col("opted_in_ts")).drop("opted_in_ts")
    frame = address_flags(frame)
    validation = validate(frame, now) if frame.height else None
    gx = validation.failures.select("line", gx_error="reason") if validation else pl.DataFrame(schema={"line": pl.Int64, "gx_error": pl.String})
    frame = check_addresses(frame.join(gx, on="line", how="left"))
    frame = frame.with_columns(blocked=blocked_by(list(options.rules), pl.col("email")))
    frame = frame.with_columns(mx_error=_domain_errors(frame, options))
    reason = pl.coalesce(
        "row_error", "gx_error", "email_error", "type_error", "consent_error", "opt_out_error",
        pl.when(pl.col("blocked").is_not_null()).then(pl.format("blocked: matches rule {}", pl.col("blocked"))),
        "mx_error",
        pl.when(pl.lit(options.reject_role_accounts) & pl.col("is_role_account")).then(pl.lit("role_account: a shared mailbox, not a person")),
        pl.when(pl.lit(options.reject_disposable) & pl.col("is_disposable")).then(pl.lit("disposable: a throwaway-address domain")),
    )
    frame = frame.with_columns(reason=reason)
    good = frame.filter(pl.col("reason").is_null()).with_columns(last_line=pl.col("line").max().over("email"))
    superseded = good.filter(pl.col("line") != pl.col("last_line")).with_columns(
        reason=pl.format("duplicate: superseded by line {}", pl.col("last_line")))
    good = good.filter(pl.col("line") == pl.col("last_line"))
    refused = [frame.filter(pl.col("reason").is_not_null()).select("_pos", "line", "reason"),
               superseded.select("_pos", "line", "reason")]
    opt_outs = opt_out_rows(frame)
    bad = pl.concat([note_opt_outs(r, opt_outs) for r in refused] + _earlier_copies(batch, good), how="diagonal")
    return Screened(good.select(SUBSCRIBER_COLUMNS), _quarantine_rows(batch, bad), validation, opt_outs)


def _earlier_copies(batch: Batch, kept: pl.DataFrame) -> list[pl.DataFrame]:
    """A kept row standing for identical copies: the earlier copies are its duplicates."""
    if batch.copies is None or not (batch.copies > 1).any():
        return []
    repeated = np.flatnonzero(batch.copies > 1)
    earlier = pl.DataFrame({"_pos": repeated, "_copies": batch.copies[repeated] - 1},
                           schema={"_pos": pl.Int64, "_copies": pl.Int64})
    return [kept.select("_pos", "line").join(earlier, on="_pos").with_columns(
        reason=pl.format("duplicate: superseded by line {}", pl.col("line")))]


def require_email_header(raw_header: list[str], mapping: Mapping_) -> None:
    """A file with a header (CSV, Parquet) names its email column there, rows or not."""
    if raw_header:
        empty = pl.DataFrame(schema=dict.fromkeys(header_names(raw_header), pl.String))
        require_email_column(rename_columns(empty, raw_header, mapping).columns)


def require_email_column(columns: list[str]) -> None:
    if "email" not in columns:
        names = ", ".join(c for c in columns if c not in ("line", "_pos"))
        raise MailflowError(f"no email column (columns are: {names}); map one with --map 'COLUMN=email'")


def _domain_errors(frame: pl.DataFrame, options: ScreenOptions) -> pl.Expr:
    if options.domain_verdicts is None or not frame.height:
        return pl.lit(None, pl.String)
    domain = pl.col("email").str.split_exact("@", 1).struct.field("field_1")
    candidates = frame.filter(pl.col("email").is_not_null()).select(domain.alias("d")).unique()["d"].drop_nulls().to_list()
    verdicts = {d: r for d, r in options.domain_verdicts(candidates).items() if r}
    return domain.replace_strict(verdicts, default=None, return_dtype=pl.String) if verdicts else pl.lit(None, pl.String)


def _quarantine_rows(batch: Batch, bad: pl.DataFrame) -> pl.DataFrame:
    """One row per (rule, text): the first copy's line, the reason, the text shortened, its hash, the count.

    `bad` has the frame position, line and reason of each refused row, and `_copies` where a
    row stands for fewer copies than the batch says (the others were kept)."""
    positions = bad["_pos"].to_numpy()
    copies = np.ones(len(positions), dtype=np.int64) if batch.copies is None else batch.copies[positions]
    if "_copies" in bad.columns:
        copies = np.where(bad["_copies"].is_null().to_numpy(), copies, bad["_copies"].fill_null(0).to_numpy())
    lines = bad["line"].to_numpy() if batch.first_lines is None else batch.first_lines[positions]
    raws = batch.raw(positions.tolist()) if len(positions) else []
    entries = [(int(line), reason, shorten(raw), sha256_text(raw), int(n))
               for line, reason, raw, n in zip(lines, bad["reason"].to_list(), raws, copies)]
    entries += [(r.line, r.reason, r.raw if r.sha256 else shorten(r.raw), r.sha256 or sha256_text(r.raw), r.copies)
                for r in batch.rejected]
    out = pl.DataFrame(entries, schema={k: v for k, v in QUARANTINE_SCHEMA.items() if k != "rule"}, orient="row")
    out = out.with_columns(rule=pl.col("reason").str.split(": ").list.first())
    # Texts that differ only in what the parsers drop (a CR, a trailing newline) meet here.
    return (out.sort("line").group_by("rule", "raw_sha256", maintain_order=True)
            .agg(pl.col("line").first(), pl.col("reason").first(), pl.col("raw").first(), pl.col("count").sum())
            .select(*QUARANTINE_SCHEMA).sort("line"))
