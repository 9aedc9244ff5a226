"""Ingest one subscriber file: read in batches, screen every row, upsert the good, quarantine the rest."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
import uuid
import zlib
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.aggregate.report_text import markdown_table
from mailflow.tasks.core.checks import failing_checks
from mailflow.tasks.core.rules import load_rules
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import empty_input, inputs, transaction
from mailflow.tasks.ingest.bounds import RAW_LIMIT
from mailflow.tasks.ingest.expectations import SUITE, write_result
from mailflow.tasks.ingest.normalise import rename_columns
from mailflow.tasks.ingest.optouts import apply_opt_outs
from mailflow.tasks.ingest.readers import BATCH_BYTES, read_batches
from mailflow.tasks.ingest.screen import ScreenOptions, require_email_column, require_email_header, screen


@dataclass(frozen=True)
class IngestOptions:
    list_name: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    allow_resubscribe: bool = False
    check_mx: bool = False
    batch_bytes: int = BATCH_BYTES
    screen: ScreenOptions = field(default_factory=ScreenOptions)


@dataclass(frozen=True)
class IngestResult:
    source: str
    batch_id: str
    rows_read: int
    accepted: int
    updated: int
    unchanged: int
    quarantined: int
    resubscribes_refused: int = 0
    opt_outs: int = 0  # addresses the file opted out: suppressed, and unsubscribed if they were subscribers
    seconds: float = 0.0
    needs_smtputf8: int = 0  # addresses kept that only a relay offering SMTPUTF8 can take
    already_ingested: bool = False
    validation: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except FileNotFoundError:
        raise MailflowError(f"{path}: no such file") from None
    return digest.hexdigest()


def probe(path: Path, options: IngestOptions = IngestOptions()) -> None:
    """Read the head of a file the way ingest will, so an unreadable file fails before any flow starts."""
    raw_header, batches = read_batches(path, options.encoding, options.delimiter, 1 << 20)
    try:
        first = next(iter(batches), None)
        if first is not None and first.frame.height:
            require_email_column(rename_columns(first.frame.head(0), raw_header, options.screen.mapping).columns)
        require_email_header(raw_header, options.screen.mapping)  # also when the file has no rows
    except MailflowError as exc:
        raise MailflowError(str(exc) if str(exc).startswith(str(path)) else f"{path}: {exc}") from None
    finally:
        batches.close()


def ingest_file(con: duckdb.DuckDBPyConnection, path: Path, options: IngestOptions = IngestOptions(),
                home: Path | None = None, resolver=None) -> IngestResult:
    """All of a file or none of it, in two passes with bounded memory.

    Pass one reads and screens the file batch by batch into Parquet staging files, touching
    nothing in the warehouse, so an unreadable file stops before anything is written. Pass
    two loads the staged rows in one transaction, deduplicating across batches.
    """
    started = time.perf_counter()
    sha = file_sha256(path)
    previous = con.execute(q("find_batch"), {"sha": sha, "list_name": options.list_name}).fetchone()
    if previous:
        return _already_ingested(con, previous[0], str(path))
    batch_id, now = uuid.uuid4().hex, datetime.now(UTC)
    staging = Path(tempfile.mkdtemp(prefix=f"ingest-{batch_id[:8]}-", dir=_staging_root(home)))
    try:
        staged = _screen_to_staging(con, path, options, staging, now, resolver)
        return _load_staging(con, path, sha, batch_id, options, staged, home, started)
    except MailflowError as exc:
        raise MailflowError(f"{path}: {exc}" if not str(exc).startswith(str(path)) else str(exc)) from None
    except (OSError, EOFError, zlib.error) as exc:  # e.g. a truncated gzip stream, found while reading on
        raise MailflowError(f"{path}: cannot read ({exc})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@dataclass
class _Staged:
    good: list[str] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    opt_outs: list[str] = field(default_factory=list)
    rows_read: int = 0
    validations: list = field(default_factory=list)


def _screen_to_staging(con, path: Path, options: IngestOptions, staging: Path, now, resolver) -> _Staged:
    raw_header, batches = read_batches(path, options.encoding, options.delimiter, options.batch_bytes)
    verdicts = _mx_verdicts(con, resolver) if options.check_mx else None
    screening = ScreenOptions(**{**options.screen.__dict__, "rules": tuple(load_rules(con)), "domain_verdicts": verdicts})
    staged = _Staged()
    for number, batch in enumerate(batches):
        screened = screen(batch, raw_header, screening, now)
        for frame, names, kind in ((screened.good, staged.good, "good"), (screened.bad, staged.bad, "bad"),
                                   (screened.opt_outs, staged.opt_outs, "optout")):
            if frame.height:
                names.append(str(staging / f"{kind}-{number:05d}.parquet"))
                frame.write_parquet(names[-1], compression="lz4")
        staged.rows_read += screened.rows
        if screened.validation:
            staged.validations.append((number, screened.validation, screened.rows))
    require_email_header(raw_header, options.screen.mapping)  # also when no row was screened
    return staged


def _load_staging(con, path: Path, sha: str, batch_id: str, options: IngestOptions, staged: _Staged,
                  home: Path | None, started: float) -> IngestResult:
    good = con.read_parquet(staged.good) if staged.good else empty_input("input_subscribers")
    bad = con.read_parquet(staged.bad) if staged.bad else empty_input("input_quarantine")
    opt_outs = con.read_parquet(staged.opt_outs) if staged.opt_outs else empty_input("input_opt_outs")
    source = str(path)
    with inputs(con, input_subscribers=good, input_quarantine=bad, input_opt_outs=opt_outs), transaction(con):
        if options.list_name:
            con.execute(q("ensure_list"), {"name": options.list_name})
        con.execute(q("stage_subscriber_changes"), {"allow_resubscribe": options.allow_resubscribe})
        accepted, updated, unchanged, refused, utf8 = con.execute(q("count_subscriber_changes")).fetchone()
        con.execute(q("update_subscribers"))
        con.execute(q("insert_subscribers"))
        if options.list_name:
            con.execute(q("add_list_members"), {"name": options.list_name})
        con.execute(q("lift_opt_out_suppressions"))
        opted_out = apply_opt_outs(con)  # after the lift: an opt-out in this file outranks a re-subscription in it
        con.execute(q("insert_quarantine"), {"batch_id": batch_id, "source": source, "raw_limit": RAW_LIMIT})
        quarantined = staged.rows_read - accepted - updated - unchanged
        summaries = [_record_validation(con, validation, rows, batch_id, source, number, home)
                     for number, validation, rows in staged.validations]
        result = IngestResult(source, batch_id, staged.rows_read, accepted, updated, unchanged, quarantined, refused,
                              opt_outs=opted_out, validation=summaries, needs_smtputf8=utf8)
        con.execute(q("record_batch"), {k: v for k, v in result.as_dict().items()
                                        if k not in ("already_ingested", "validation", "needs_smtputf8")}
                    | {"sha": sha, "list_name": options.list_name, "seconds": round(time.perf_counter() - started, 3)})
        failed = failing_checks(con, ("assert_unique_subscriber_email", "assert_unique_list_membership",
                                      "assert_ingest_rows_balance", "assert_quarantine_matches_batches"))
        if failed:
            raise RuntimeError(f"data checks failed after ingesting {path}: {', '.join(failed)}")
        con.execute(q("drop_staged_subscriber_changes"))
    return replace(result, seconds=round(time.perf_counter() - started, 3))


def _staging_root(home: Path | None) -> Path | None:
    if home is None:
        return None
    root = home / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return root


def _mx_verdicts(con, resolver):
    """domain -> quarantine reason, from cached or fresh MX lookups (mailflow.tasks.core.dns)."""
    from mailflow.tasks.core.dns import NO_DOMAIN, NO_MAIL_HOST, NULL_MX, check_domains

    reasons = {NO_DOMAIN: "no_domain", NULL_MX: "null_mx", NO_MAIL_HOST: "no_mail_host"}

    def verdicts(domains: list[str]) -> dict[str, str | None]:
        statuses = check_domains(con, domains, resolver)
        return {d: (f"{reasons[s.status]}: {s.detail}" if s.status in reasons else None) for d, s in statuses.items()}

    return verdicts


def _record_validation(con, validation, rows: int, batch_id: str, source: str, number: int, home: Path | None) -> dict:
    run_id = f"{batch_id}-{number:04d}"
    path = write_result(validation, home / "validation", run_id) if home else ""  # no home: the table row only
    con.execute(q("record_validation_run"), {
        "run_id": run_id, "batch_id": batch_id, "source": source, "suite": SUITE, "success": validation.success,
        "evaluated": validation.evaluated, "failed": validation.failed,
        "rows_checked": rows, "rows_failed": validation.rows_failed,
        "result_path": str(path),
    })
    return {"run_id": run_id, "success": validation.success, "expectations": validation.summary, "result": str(path)}


def _already_ingested(con, batch_id: str, source: str) -> IngestResult:
    row = con.execute(q("batch_counts"), {"batch_id": batch_id}).fetchone()
    rows_read, quarantined = row
    return IngestResult(source, batch_id, rows_read, 0, 0, rows_read - quarantined, quarantined, already_ingested=True)


def validation_markdown(result: IngestResult) -> str:
    lines = [f"# Ingest of `{result.source}`", "",
             markdown_table(["rows read", "new", "updated", "unchanged", "quarantined", "opted out", "seconds"],
                            [[result.rows_read, result.accepted, result.updated, result.unchanged,
                              result.quarantined, result.opt_outs, result.seconds]])]
    for run in result.validation:
        lines += ["", f"## Great Expectations suite `{SUITE}` — {'passed' if run['success'] else 'failed'}", "",
                  markdown_table(["expectation", "success", "unexpected rows"],
                                 [[e["rule"], e["success"], e["unexpected"]] for e in run["expectations"]])]
    return "\n".join(lines)
