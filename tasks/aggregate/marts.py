"""The engagement marts: run the dbt-shaped models of sql/models/ (staging -> intermediate -> marts), incrementally."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mailflow import SQL_DIR
from mailflow.tasks.core.sqlfiles import q

MODELS_DIR = SQL_DIR / "models"
# Each mart and the key its rows are replaced by: a touched campaign's rows, a touched
# subscriber's row, or (a small table over all lists) every row.
MART_KEYS = {
    "engagement_by_variant": "campaign_id",
    "engagement_by_provider": "campaign_id",
    "engagement_by_domain": "campaign_id",
    "engagement_by_hour": "campaign_id",
    "engagement_by_link": "campaign_id",
    "subscriber_engagement": "subscriber_id",
    "list_activity": None,
}
_SCOPE = {"campaign_id": "mart_campaigns", "subscriber_id": "mart_subscribers"}
_PARAMETER = re.compile(r"\$([a-z_]+)")
_COMMENT = re.compile(r"--[^\n]*")


@dataclass(frozen=True)
class Model:
    name: str
    layer: str  # staging | intermediate | marts
    sql: str


def models(directory: Path = MODELS_DIR) -> list[Model]:
    """Every model, each after the models it reads: staging, then intermediate, then marts."""
    found: list[Model] = []
    for layer in ("staging", "intermediate", "marts"):
        layer_models = {path.stem: Model(path.stem, layer, path.read_text(encoding="utf-8").strip().rstrip(";"))
                        for path in sorted((directory / layer).glob("*.sql"))}
        reads = {name: {other for other in layer_models if other != name and re.search(rf"\b{other}\b", _code(m.sql))}
                 for name, m in layer_models.items()}
        while reads:
            ready = sorted(name for name, needs in reads.items() if not needs)
            if not ready:
                raise ValueError(f"sql/models/{layer}: models read each other in a cycle: {', '.join(sorted(reads))}")
            found += [layer_models[name] for name in ready]
            reads = {name: needs - set(ready) for name, needs in reads.items() if name not in ready}
    return found


def _code(sql: str) -> str:
    return _COMMENT.sub("", sql)


def models_sha(directory: Path = MODELS_DIR) -> str:
    """A digest of every model's text: what a mart was computed by."""
    digest = hashlib.sha256()
    for model in models(directory):
        digest.update(f"{model.layer}/{model.name}\n{model.sql}\n".encode())
    return digest.hexdigest()


def refresh_marts(con: duckdb.DuckDBPyConnection, touched: bool = True, *, as_of: datetime | None = None) -> dict:
    """Bring every mart up to date with deliveries and events.

    With `touched` and the load's TEMP tables `touched_campaigns(campaign_id)` and
    `touched_subscribers(subscriber_id)` present, only those campaigns' and subscribers' rows are
    recomputed (delete + insert), plus the subscribers an event or delivery of left one of
    subscriber_engagement's windows since the last refresh. Otherwise, or when a mart was never
    refreshed or its model's columns changed, every mart is rebuilt. `as_of` (default now) is the
    time the windows count back from. Runs in the caller's transaction (the aggregate's), if any:
    DuckDB cannot tell whether one is open without spoiling it.
    """
    started = time.perf_counter()
    as_of = as_of or datetime.now(UTC)
    found, sha = models(), models_sha()
    last = {mart: (at, by) for mart, at, by in con.execute(q("mart_refresh_times")).fetchall()}
    fresh = [last[mart][0] for mart in MART_KEYS if mart in last and last[mart][1] == sha]
    since = min(fresh) if len(fresh) == len(MART_KEYS) else None  # the windows' edges last time
    full = not (touched and con.execute(q("touched_tables_present")).fetchone()[0]) or since is None or since > as_of
    campaigns = subscribers = None  # all of them
    if full:
        con.execute(q("stage_all_inputs"))
    else:
        con.execute(q("stage_mart_campaigns"))
        con.execute(q("stage_mart_subscribers"), {"since": since, "as_of": as_of})
        con.execute(q("stage_touched_inputs"))
        campaigns, subscribers = con.execute(q("mart_scope_sizes")).fetchone()
    built = []
    try:
        for model in found:
            run_model(con, model, full, as_of)
            built.append(model)
    finally:
        for model in reversed(built):
            if model.layer != "marts":
                con.execute(f"DROP {'VIEW' if model.layer == 'staging' else 'TABLE'} IF EXISTS {model.name}")
        con.execute(q("drop_inputs"))
    seconds = time.perf_counter() - started
    for mart in MART_KEYS:
        con.execute(q("record_mart_refresh"), {"mart": mart, "as_of": as_of, "full_rebuild": full,
                                                  "models_sha": sha, "seconds": seconds})
    return {"marts_rebuilt": full, "mart_campaigns": campaigns, "mart_subscribers": subscribers,
            "mart_seconds": round(seconds, 3)}


def run_model(con: duckdb.DuckDBPyConnection, model: Model, full: bool, as_of: datetime) -> None:
    """Staging models become TEMP views, intermediate ones TEMP tables (read by several marts),
    marts have their scope's rows replaced (or, rebuilt in full, the whole table)."""
    params = {"as_of": as_of} if "as_of" in _PARAMETER.findall(model.sql) else None
    if model.layer == "staging":
        con.execute(f"CREATE OR REPLACE TEMP VIEW {model.name} AS {model.sql}")
    elif model.layer == "intermediate":
        con.execute(f"CREATE OR REPLACE TEMP TABLE {model.name} AS {model.sql}", params)
    else:
        key = MART_KEYS[model.name]
        if full and _columns_changed(con, model, params):
            con.execute(f"CREATE OR REPLACE TABLE {model.name} AS {model.sql}", params)
            return
        if full or key is None:
            con.execute(f"DELETE FROM {model.name}")
        else:
            con.execute(f"DELETE FROM {model.name} WHERE {key} IN (SELECT {key} FROM {_SCOPE[key]})")
        con.execute(f"INSERT INTO {model.name} BY NAME {model.sql}", params)


def mart_columns(con: duckdb.DuckDBPyConnection, name: str) -> list[str]:
    return [row[0] for row in con.execute(q("table_columns"), {"table": name}).fetchall()]


def _columns_changed(con: duckdb.DuckDBPyConnection, model: Model, params: dict | None) -> bool:
    return con.sql(f"SELECT * FROM ({model.sql}) LIMIT 0", params=params).columns != mart_columns(con, model.name)

