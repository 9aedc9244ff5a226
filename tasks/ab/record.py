"""ab_decisions and the counts a decision reads: the warehouse side of the A/B winner (named queries in sql/queries/ab.sql)."""

from __future__ import annotations

import json
from datetime import datetime

import duckdb

from mailflow.tasks.ab.decide import VariantCounts
from mailflow.tasks.ab.lift import holdout_lift
from mailflow.tasks.ab.stats import Arm
from mailflow.tasks.core.sqlfiles import q

JSON_COLUMNS = ("probability_best", "variants", "comparisons", "holdout")


def variant_counts(con: duckdb.DuckDBPyConnection, campaign_id: str, variants: tuple[str, ...]) -> list[VariantCounts]:
    """Every variant of the test in the campaign's order; one nobody was delivered to counts zeros."""
    found = {row[0]: VariantCounts(*row) for row in con.execute(q("ab_variant_counts"), {"campaign_id": campaign_id}).fetchall()}
    return [found.get(name, VariantCounts(name, 0)) for name in variants]


def lift_of(con: duckdb.DuckDBPyConnection, campaign_id: str, until: datetime, confidence: float) -> dict | None:
    groups = {holdout: (n, engaged, starts) for holdout, n, engaged, starts in
              con.execute(q("ab_holdout_engagement"), {"campaign_id": campaign_id, "until": until}).fetchall()}
    mailed, holdout = groups.get(False, (0, 0, None)), groups.get(True, (0, 0, None))
    starts = mailed[2] or holdout[2]
    return holdout_lift(Arm("mailed", mailed[0], mailed[1]), Arm("holdout", holdout[0], holdout[1]), confidence,
                        (starts.isoformat() if starts else None, until.isoformat()))


def remainder_size(con: duckdb.DuckDBPyConnection, campaign_id: str) -> int:
    return con.execute(q("ab_remainder_size"), {"campaign_id": campaign_id}).fetchall()[0][0]


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:
        row.update({k: json.loads(row[k]) for k in JSON_COLUMNS if isinstance(row.get(k), str)})
    return rows


def decisions_of(con: duckdb.DuckDBPyConnection, campaign_id: str) -> list[dict]:
    """Every attempt, the latest first."""
    return _rows(con.execute(q("ab_decisions_of"), {"campaign_id": campaign_id}))


def final_decision(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict | None:
    rows = _rows(con.execute(q("ab_final_decision"), {"campaign_id": campaign_id}))
    return rows[0] if rows else None


def store(con: duckdb.DuckDBPyConnection, row: dict) -> int:
    """Insert one attempt; its number."""
    params = {k: json.dumps(v) if k in JSON_COLUMNS and v is not None else v for k, v in row.items()}
    return con.execute(q("ab_insert_decision"), params).fetchall()[0][0]


def mark_remainder_sent(con: duckdb.DuckDBPyConnection, campaign_id: str, at: datetime) -> None:
    con.execute(q("ab_mark_remainder_sent"), {"campaign_id": campaign_id, "sent_at": at})


def decision_status(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[bool, datetime | None]]:
    """campaign_id -> (a decision stands, when to try again)."""
    return {cid: (bool(decided), next_try) for cid, decided, next_try in con.execute(q("ab_decision_status")).fetchall()}
