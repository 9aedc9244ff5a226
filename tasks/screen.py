"""Screen one batch of subscriber rows: every check in one pass, each failing row with its rule and reason."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from mailflow.errors import MailflowError
from tasks.expectations import Validation, validate
from tasks.normalise import Mapping_, idna_domains, normalise, parse_timestamps, rename_columns
from tasks.readers import Batch
from tasks.rules import Rule, blocked_by
from tasks.validate import address_flags, check_addresses, field_errors

SUBSCRIBER_COLUMNS = ["line", "email", "email_original", "first_name", "last_name", "status", "opted_in_at",
                      "consent_source", "double_opt_in", "is_role_account", "is_disposable", "needs_smtputf8", "attributes"]
QUARANTINE_SCHEMA = {"line": pl.Int64, "rule": pl.String, "reason": pl.String, "raw": pl.String}


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
    bad: pl.DataFrame           # QUARANTINE_SCHEMA
    validation: Validation | None


def screen(batch: Batch, raw_header: list[str], options: ScreenOptions, now: datetime) -> Screened:
    frame = rename_columns(batch.frame, raw_header, options.mapping).with_columns(_pos=pl.int_range(pl.len()))
    if frame.height:
        require_email_column(frame.columns)
    fields = [c for c in frame.columns if c not in ("line", "_pos")]
    frame = field_errors(frame, fields)                     # on the text as it came
    frame = idna_domains(normalise(frame, options.mapping, fields))
    frame = frame.with_columns(
        pl.col("status", "double_opt_in").str.to_lowercase(),
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
        "row_error", "gx_error", "email_error", "type_error", "consent_error",
        pl.when(pl.col("blocked").is_not_null()).then(pl.format("blocked: matches rule {}", pl.col("blocked"))),
        "mx_error",
        pl.when(pl.lit(options.reject_role_accounts) & pl.col("is_role_account")).then(pl.lit("role_account: a shared mailbox, not a person")),
        pl.when(pl.lit(options.reject_disposable) & pl.col("is_disposable")).then(pl.lit("disposable: a throwaway-address domain")),
    )
    frame = frame.with_columns(reason=reason)
    good = frame.filter(pl.col("reason").is_null()).with_columns(last_line=pl.col("line").max().over("email"))
    superseded = good.filter(pl.col("line") != pl.col("last_line")).with_columns(
        reason=pl.format("duplicate: superseded by line {}", pl.col("last_line")))
    bad = pl.concat([frame.filter(pl.col("reason").is_not_null()), superseded.drop("last_line")]).sort("line")
    good = good.filter(pl.col("line") == pl.col("last_line")).select(SUBSCRIBER_COLUMNS)
    return Screened(good, _quarantine_rows(batch, bad), validation)


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
    raws = batch.raw(bad["_pos"].to_list()) if bad.height else []
    rows = bad.select("line", "reason").with_columns(raw=pl.Series(raws, dtype=pl.String))
    rejected = pl.DataFrame([(line, reason, raw) for line, _, reason, raw in batch.rejected],
                            schema={k: v for k, v in QUARANTINE_SCHEMA.items() if k != "rule"}, orient="row")
    out = pl.concat([rejected, rows]).sort("line")
    return out.select("line", rule=pl.col("reason").str.split(": ").list.first(), reason="reason", raw="raw")
