"""Engagement marts benchmark: refresh_marts over 10M events + 1M deliveries, in full and for 100k new events.

The warehouse is generated in DuckDB (a few INSERT ... SELECT
over range()): 1M subscribers on 50 domains, 10 campaigns of 100k recipients each with A/B
variants, 10M events (opens 70%, clicks 25%, the rest unsubscribes, complaints and bounces; 30% of
opens and clicks machine-flagged) over 30 days. Figures: a full rebuild of every mart, then an
incremental refresh after 100k new events of two campaigns (the load's touched_* tables filled as
it would), each inside one transaction as the aggregate runs it. The baseline, in the same run:
DuckDB's bare `GROUP BY campaign_id` count over the same events table.
"""

from __future__ import annotations

import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from bench import label, log, row
from mailflow.tasks.aggregate.marts import refresh_marts
from mailflow.tasks.core.warehouse import connect, transaction

EVENTS = int(os.environ.get("BENCH_MARTS_EVENTS", "10000000"))
DELIVERIES = int(os.environ.get("BENCH_MARTS_DELIVERIES", "1000000"))
NEW_EVENTS = 100_000
TARGET_FULL, TARGET_INCREMENTAL = 20.0, 2.0  # issue 13's, for the whole aggregate: the marts are part of it
CAMPAIGNS = 10
START = datetime(2026, 10, 1, tzinfo=UTC)


def generate(con: duckdb.DuckDBPyConnection, events: int, deliveries: int) -> None:
    per_campaign = deliveries // CAMPAIGNS
    con.execute("INSERT INTO subscribers (subscriber_id, email, email_original) "
                "SELECT i, 'u' || i || '@d' || (i % 50) || '.example', 'u' || i FROM range(1, $n + 1) AS t(i)",
                {"n": per_campaign * CAMPAIGNS})
    con.execute("INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at, kind, "
                "provider) SELECT 'c' || (i // $per), i + 1, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END, 0, "
                "CASE WHEN i % 50 = 0 THEN 'bounced' WHEN i % 97 = 0 THEN 'deferred' ELSE 'delivered' END, 1, "
                "$start::TIMESTAMPTZ + to_days(CAST((i // $per) * 3 AS INTEGER)), CASE WHEN i % 100 = 0 THEN 'hard' WHEN i % 50 = 0 "
                "THEN 'soft' END, ['gmail', 'microsoft', 'yahoo', 'other'][i % 4 + 1] FROM range($n) AS t(i)",
                {"per": per_campaign, "n": per_campaign * CAMPAIGNS, "start": START})
    insert_events(con, 0, events, per_campaign)


def insert_events(con: duckdb.DuckDBPyConnection, first: int, n: int, per_campaign: int, campaigns: int = CAMPAIGNS) -> None:
    """n events numbered from `first`: recipient j of the deliveries gets events of its own campaign."""
    con.execute("""
        INSERT INTO events (event_id, campaign_id, subscriber_id, variant, type, link, url, occurred_at, is_machine, kind)
        SELECT 'e' || i, 'c' || (r // $per), r + 1, CASE WHEN r % 2 = 0 THEN 'A' ELSE 'B' END,
               CASE WHEN i % 100 < 70 THEN 'open' WHEN i % 100 < 95 THEN 'click' WHEN i % 100 < 97 THEN 'unsubscribe'
                    WHEN i % 100 < 98 THEN 'complaint' ELSE 'bounce' END,
               CASE WHEN i % 100 BETWEEN 70 AND 94 THEN i % 5 END, NULL,
               $start::TIMESTAMPTZ + to_days(CAST((r // $per) * 3 AS INTEGER)) + to_seconds(CAST(i % 259200 AS BIGINT)), i % 10 < 3,
               CASE WHEN i % 100 >= 98 THEN 'soft' END
        FROM (SELECT i, hash(i) % ($per * $campaigns) AS r FROM range($first, $first + $n) AS t(i))
    """, {"per": per_campaign, "first": first, "n": n, "start": START, "campaigns": campaigns})


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="marts-bench-") as folder:
        path = Path(folder) / "w.duckdb"
        with connect(path) as con:
            log(f"marts bench: generating {label(EVENTS)} events and {label(DELIVERIES)} deliveries")
            generate(con, EVENTS, DELIVERIES)
            con.execute("CHECKPOINT")
            baseline = timed(lambda: con.execute("SELECT campaign_id, count(*) FROM events GROUP BY campaign_id").fetchall())
            as_of = datetime(2026, 11, 5, tzinfo=UTC)

            def full() -> None:
                with transaction(con):
                    refresh_marts(con, False, as_of=as_of)

            full_seconds = timed(full)
            log(f"marts bench: full rebuild {full_seconds:.2f} s (bare GROUP BY {baseline:.2f} s)")
            per_campaign = DELIVERIES // CAMPAIGNS
            insert_events(con, EVENTS, NEW_EVENTS, per_campaign, campaigns=2)  # the two first campaigns
            con.execute("CREATE TEMP TABLE touched_campaigns AS SELECT DISTINCT campaign_id FROM events "
                        "WHERE event_id IN (SELECT 'e' || i FROM range($a, $b) AS t(i))", {"a": EVENTS, "b": EVENTS + NEW_EVENTS})
            con.execute("CREATE TEMP TABLE touched_subscribers AS SELECT DISTINCT subscriber_id FROM events "
                        "WHERE event_id IN (SELECT 'e' || i FROM range($a, $b) AS t(i))", {"a": EVENTS, "b": EVENTS + NEW_EVENTS})

            def incremental() -> None:
                with transaction(con):
                    result = refresh_marts(con, True, as_of=as_of)
                assert not result["marts_rebuilt"], result

            incremental_seconds = timed(incremental)
            log(f"marts bench: incremental after {label(NEW_EVENTS)} new events {incremental_seconds:.2f} s")
    name = f"marts {label(EVENTS)} events + {label(DELIVERIES)} deliveries"
    return [
        row(f"{name}: full rebuild", full_seconds, "s", "bare GROUP BY campaign_id", full_seconds / baseline,
            problem=None if full_seconds < TARGET_FULL else f"marts full rebuild {full_seconds:.1f} s >= {TARGET_FULL} s"),
        row(f"{name}: refresh after {label(NEW_EVENTS)} new events", incremental_seconds, "s", "bare GROUP BY campaign_id",
            incremental_seconds / baseline,
            problem=None if incremental_seconds < TARGET_INCREMENTAL
            else f"marts incremental refresh {incremental_seconds:.1f} s >= {TARGET_INCREMENTAL} s"),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
