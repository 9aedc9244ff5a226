"""The subscriber expectation suite (Great Expectations 1.x) and its run over one batch."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import polars as pl

SUITE = "subscribers"
STATUSES = ["active", "unsubscribed", "bounced", "complained"]
DOUBLE_OPT_IN = ["confirmed", "pending", "none"]
EARLIEST_CONSENT = datetime(1990, 1, 1, tzinfo=UTC)
CHECKED_COLUMNS = ["email", "status", "double_opt_in", "opted_in_at"]


@dataclass(frozen=True)
class Validation:
    success: bool
    evaluated: int
    failed: int
    rows_failed: int
    failures: pl.DataFrame   # line, reason: rows to quarantine (uniqueness excluded: dedupe decides)
    result: dict             # the GX result, JSON-ready
    summary: list[dict]      # one line per expectation: rule, success, unexpected


EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def suite(now: datetime) -> list[tuple[object, pl.Expr]]:
    """The suite as code, each expectation beside the Polars predicate of the rows it rejects.

    GX judges the batch and its result is what is stored; the predicates name the failing
    rows (GX's COMPLETE result format lists them row by row in Python, seconds per million,
    and caps the list). The two must agree on every count, or the ingest stops.
    """
    import great_expectations as gx

    e = gx.expectations
    latest = now + timedelta(days=1)
    email, status, doi, opted = pl.col("email"), pl.col("status"), pl.col("double_opt_in"), pl.col("opted_in_at")
    return [
        (e.ExpectColumnValuesToNotBeNull(column="email"), email.is_null()),
        (e.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL_SHAPE),
         email.is_not_null() & ~email.str.contains(EMAIL_SHAPE)),
        (e.ExpectColumnValuesToBeUnique(column="email"), email.is_not_null() & email.is_duplicated()),
        (e.ExpectColumnValuesToBeInSet(column="status", value_set=STATUSES), status.is_not_null() & ~status.is_in(STATUSES)),
        (e.ExpectColumnValuesToBeInSet(column="double_opt_in", value_set=DOUBLE_OPT_IN),
         doi.is_not_null() & ~doi.is_in(DOUBLE_OPT_IN)),
        (e.ExpectColumnValuesToBeBetween(column="opted_in_at", min_value=EARLIEST_CONSENT, max_value=latest),
         opted.is_not_null() & ((opted < EARLIEST_CONSENT) | (opted > latest))),
    ]


@cache
def _batch_definition():
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):  # the latter sets INFO itself
        logging.getLogger(name).setLevel(logging.WARNING)

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("mailflow").add_dataframe_asset(SUITE)
    return context, asset.add_batch_definition_whole_dataframe("batch")


def validate(frame: pl.DataFrame, now: datetime | None = None) -> Validation:
    """Run the suite on the batch; failing rows come back with the rule they broke."""
    import great_expectations as gx

    now = now or datetime.now(UTC)
    pairs = suite(now)
    context, batch_definition = _batch_definition()
    gx_suite = gx.ExpectationSuite(name=SUITE, expectations=[expectation for expectation, _ in pairs])
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame.select(CHECKED_COLUMNS).to_pandas()})
    result = batch.validate(gx_suite, result_format={"result_format": "SUMMARY"})
    flagged = frame.select("line", *[predicate.fill_null(False).alias(f"x{i}") for i, (_, predicate) in enumerate(pairs)])
    failures, summary, details = [], [], []
    for i, item in enumerate(result.results):
        config = item.expectation_config
        column = config.kwargs.get("column")
        rule = f"gx:{config.type}({column})"
        gx_count = int(item.result.get("unexpected_count") or 0)
        rows = flagged.filter(pl.col(f"x{i}")).select("line")
        if rows.height != gx_count:
            raise RuntimeError(f"{rule}: Great Expectations counts {gx_count} unexpected rows, mailflow {rows.height}")
        summary.append({"rule": rule, "success": bool(item.success), "unexpected": gx_count})
        details.append({"expectation": config.type, "kwargs": _plain(config.kwargs), "success": bool(item.success),
                        "unexpected_count": gx_count, "unexpected_percent": item.result.get("unexpected_percent"),
                        "partial_unexpected_list": _plain(item.result.get("partial_unexpected_list") or []),
                        "unexpected_lines_sample": rows["line"].head(20).to_list()})
        if config.type != "expect_column_values_to_be_unique":  # duplicates: "last row wins" decides
            failures.append(rows.join(frame.select("line", value=pl.col(column).cast(pl.String)), on="line")
                            .select("line", reason=pl.format(f"{rule}: unexpected value '{{}}'", pl.col("value").fill_null("null"))))
    failed_rows = pl.concat(failures).unique("line", keep="first", maintain_order=True) if failures else \
        pl.DataFrame(schema={"line": pl.Int64, "reason": pl.String})
    payload = {"suite": SUITE, "success": bool(result.success), "statistics": _plain(result.statistics),
               "rows": frame.height, "results": details}
    return Validation(bool(result.success), len(summary), sum(not s["success"] for s in summary),
                      failed_rows.height, failed_rows, payload, summary)


def _plain(value):
    return json.loads(json.dumps(value, default=str))


def write_result(validation: Validation, directory: Path, run_id: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run_id}.json"
    path.write_text(json.dumps(validation.result, indent=1), encoding="utf-8")
    return path
