"""The DuckDB warehouse: open it briefly, migrate it, and the input relations queries read."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import polars as pl

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q, schema_migrations, view_definitions

# Python hands frames to SQL under these names (con.register); the named-query test
# registers empty frames of these shapes so every query can be prepared.
INPUT_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "input_subscribers": {
        "line": pl.Int64(), "email": pl.String(), "email_original": pl.String(), "first_name": pl.String(),
        "last_name": pl.String(), "status": pl.String(), "opted_in_at": pl.Datetime("us", "UTC"),
        "consent_source": pl.String(), "double_opt_in": pl.String(), "is_role_account": pl.Boolean(),
        "is_disposable": pl.Boolean(), "needs_smtputf8": pl.Boolean(), "attributes": pl.String(),
    },
    "input_quarantine": {"line": pl.Int64(), "rule": pl.String(), "reason": pl.String(), "raw": pl.String(),
                         "raw_sha256": pl.String(), "count": pl.Int64()},
    "input_opt_outs": {"line": pl.Int64(), "email": pl.String(), "cause": pl.String()},  # tasks/ingest/optouts.py
    # Send-ledger records, their fields as text, and where each line is (tasks/aggregate/aggregate.py)
    "input_ledger": {"file": pl.String(), "byte_offset": pl.Int64(),
                     **{f: pl.String() for f in ("campaign_id", "subscriber_id", "variant", "chunk_id", "attempt",
                                                 "status", "smtp_code", "enhanced_status", "detail", "kind", "reason",
                                                 "provider", "retry_at", "logged_at", "seq")}},
    "campaign_condition": {"subscriber_id": pl.Int64()},  # a campaign's checked `where` (tasks/plan/condition.py)
    "segment_condition": {"subscriber_id": pl.Int64()},  # one checked segment or `where` (tasks/plan/segments.py)
    # The plan's small tables (tasks/plan/): each variant's times by zone, the provider map
    "plan_times": {"variant": pl.String(), "zone_key": pl.String(), "not_before": pl.Datetime("us", "UTC")},
    "provider_domains": {"domain": pl.String(), "provider": pl.String()},
    # Warm-up: each group's recipients by rank that wait for a later day, and that day's start (tasks/plan/warmup.py)
    "warmup_days": {"provider": pl.String(), "first_rank": pl.Int64(), "end_rank": pl.Int64(),
                    "not_before": pl.Datetime("us", "UTC")},
    "input_suppression_log": {"email": pl.String(), "cause": pl.String(), "source": pl.String(), "at": pl.String()},
    "input_transitions": {"campaign_id": pl.String(), "seq": pl.Int64(), "at": pl.String(), "from_state": pl.String(),
                          "to_state": pl.String(), "by": pl.String(), "reason": pl.String()},
    # Event logs' new lines and how far each file was read (tasks/aggregate/events.py)
    "input_event_lines": {"file": pl.String(), "byte_offset": pl.Int64(), "line": pl.Int64(), "tail": pl.Boolean(),
                          "text": pl.String(), "undecodable": pl.String()},
    # A block of event lines as records: where each is, why it cannot be one, its text, its fields as text
    "input_event_records": {
        "file": pl.String(), "byte_offset": pl.Int64(), "line": pl.Int64(), "tail": pl.Boolean(), "problem": pl.String(),
        "text": pl.String(), **{f: pl.String() for f in ("event_id", "type", "campaign_id", "subscriber_id", "variant",
                                                         "link", "url", "occurred_at", "ip", "user_agent", "kind",
                                                         "reason", "status", "smtp_code", "diagnostic")},
        "data": pl.String()},
    "input_event_progress": {"file": pl.String(), "size": pl.Int64(), "bytes_loaded": pl.Int64(), "rows": pl.Int64()},
    # Machine opens and clicks (tasks/aggregate/machine.py): distinct user agents and addresses classified
    "input_machine_agents": {"user_agent": pl.String(), "applies_to": pl.String(), "reason": pl.String()},
    "input_machine_networks": {"ip": pl.String(), "network": pl.String()},
    "input_campaign_links": {"campaign_id": pl.String(), "links": pl.Int64()},
}


# An analyst's connection (`mailflow sql`, exports): the warehouse and nothing else. No files
# read or written (COPY, EXPORT, ATTACH, read_text('/proc/self/environ') ...), no extension
# installed or loaded, and no SET to undo any of it. Order matters: the lock comes last.
LOCKED_DOWN = {
    "enable_external_access": False,
    "allow_community_extensions": False,
    "autoload_known_extensions": False,
    "autoinstall_known_extensions": False,
    "lock_configuration": True,
}


def empty_input(name: str) -> pl.DataFrame:
    return pl.DataFrame(schema=INPUT_SCHEMAS[name])


@contextmanager
def connect(path: Path | str, read_only: bool = False, memory_limit: str = "2GB",
            locked: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse for one step and close it after: no process holds it for long.

    DuckDB's default memory limit is 80% of RAM; a bounded one makes big loads spill to
    disk (next to the file) instead of growing the process. `locked` opens it read-only
    for analysts, with LOCKED_DOWN.
    """
    path, read_only = Path(path), read_only or locked
    if read_only and not path.exists():
        raise MailflowError(f"{path}: no warehouse yet (run `mailflow init` or ingest something)")
    if not read_only:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # a home on a path that cannot be made: bad input, one line
            raise MailflowError(f"{path.parent}: cannot create the home ({exc.strerror or exc})") from None
    try:
        config = {"memory_limit": memory_limit} | (LOCKED_DOWN if locked else {})
        con = duckdb.connect(str(path), read_only=read_only, config=config)
    except duckdb.IOException as exc:
        raise MailflowError(f"{path}: cannot open the warehouse ({_first_line(exc)})") from None
    try:
        if not read_only:
            migrate(con)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All of the block or none of it."""
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


@contextmanager
def inputs(con: duckdb.DuckDBPyConnection, **relations: pl.DataFrame | duckdb.DuckDBPyRelation) -> Iterator[None]:
    """Frames or relations (e.g. over staged Parquet files) visible to named queries under their
    INPUT_SCHEMAS names for the block: registered as temporary views, so nothing of them stays
    in the warehouse (a relation's own `create_view` would make a lasting one)."""
    for name, relation in relations.items():
        assert name in INPUT_SCHEMAS, f"{name} is not a declared input relation"
        con.register(name, relation)
    try:
        yield
    finally:
        for name in relations:
            con.unregister(name)


def migrate(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the numbered migrations not yet recorded, then the views; return the names applied."""
    migrations = schema_migrations()
    bootstrap = [sql for version, _, sql in migrations if version == 0]
    for sql in bootstrap:
        con.execute(sql)
    applied = {row[0] for row in con.execute(q("applied_migrations")).fetchall()}
    done = []
    for version, name, sql in migrations:
        if version == 0 or version in applied:
            continue
        with transaction(con):
            con.execute(sql)
            con.execute(q("record_migration"), {"version": version, "name": name})
        done.append(name)
    con.execute(q("create_mart_tables"))  # derived tables the views read (sql/queries/marts.sql)
    for _, sql in view_definitions():  # views are code, not data: always the current definition
        con.execute(sql)
    return done


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
