"""Aggregate benchmark: the whole load (`load_logs`) over 10,000,000 events and 1,000,000 ledger records, then an incremental run.

Generates (once, cached under bench/out/aggregate-<events>-<records>/, git-ignored) send ledgers for
20 campaigns (an `in_flight` mark and an outcome per recipient, chunks of 1,000, as
tasks/files/ledger.py writes them) and event logs in 64 MB-ish files as the tracking service rotates
them: opens (some from Apple's and Google's proxies), clicks (some in scanner bursts), a few
unsubscribes, bounces and complaints. Then times, in a fresh warehouse holding the subscribers:
  - the full aggregate (ledgers, events, machine flags, suppressions, whatever load_logs calls);
  - an incremental run after 100,000 new events are appended in a new file;
  - the baseline: bare DuckDB `read_json` + `GROUP BY campaign_id` over the same files, same run.
BENCH_AGG_EVENTS / BENCH_AGG_RECORDS scale it (the test runs it small); BENCH_AGG_PROFILE=1 prints where
each run spends its time, by named query. `python -m bench.aggregate_bench`.
"""

from __future__ import annotations

import os
import resource
import shutil
import time
from pathlib import Path

import duckdb

from bench import label, log, row
from bench.plan_profile import TimedConnection
from mailflow.settings import load_settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.core.warehouse import connect

EVENTS = int(os.environ.get("BENCH_AGG_EVENTS", "10000000"))
RECORDS = int(os.environ.get("BENCH_AGG_RECORDS", "1000000"))
NEW_EVENTS = int(os.environ.get("BENCH_AGG_NEW_EVENTS", "100000"))
PROFILE = bool(os.environ.get("BENCH_AGG_PROFILE"))  # where the load spends its time, by named query
CAMPAIGNS = 20
PER_CHUNK = 1000
EVENTS_PER_FILE = 250_000  # ~64 MB, the tracking service's default rotation size
OUT = Path(__file__).resolve().parent / "out"
FORMAT = "data"  # the event lines' shape: other fields under `data` (the cache of another shape is not reused)
TARGET_FULL, TARGET_INCREMENTAL = 20.0, 2.0

# Each recipient's ledger: in_flight, then delivered (bounced: 1 in 50, hard every other one)
LEDGER_SQL = """
COPY (
    WITH r AS (
        SELECT range AS sid FROM range(greatest($chunk * $per_chunk, 1), least(($chunk + 1) * $per_chunk, $recipients + 1))
    ),
    outcomes AS (
        SELECT sid, CASE WHEN sid % 50 = 0 THEN 'bounced' ELSE 'delivered' END AS outcome,
               TIMESTAMPTZ '2026-12-01 09:00:00+00' + to_milliseconds((sid * 7)::BIGINT) AS t0
        FROM r
    ),
    attempts AS (
        SELECT *, unnest(['in_flight', outcome]) AS status FROM outcomes
    )
    SELECT $campaign AS campaign_id, sid AS subscriber_id, CASE WHEN sid % 2 = 0 THEN 'A' ELSE 'B' END AS variant,
           $chunk AS chunk_id, status,
           CASE WHEN status = 'in_flight' THEN NULL WHEN status = 'bounced' THEN 550 ELSE 250 END AS smtp_code,
           CASE WHEN status = 'bounced' THEN '5.1.1' END AS enhanced_status, '250 2.0.0 Ok: queued' AS detail,
           1 AS attempt, CASE WHEN status = 'bounced' THEN (CASE WHEN sid % 100 = 0 THEN 'hard' ELSE 'soft' END) END AS kind,
           CASE WHEN status = 'bounced' THEN 'user_unknown' END AS reason, 'gmail' AS provider, NULL AS retry_at,
           false AS unsent,
           strftime(t0 + to_milliseconds(CASE WHEN status = 'in_flight' THEN 0 ELSE 300 END),
                    '%Y-%m-%dT%H:%M:%S.%f+00:00') AS logged_at,
           row_number() OVER (ORDER BY sid, status = 'in_flight' DESC) AS seq
    FROM attempts
    ORDER BY sid, status = 'in_flight' DESC
) TO '{path}' (FORMAT JSON)
"""

EVENTS_SQL = """
COPY (
    WITH e AS (SELECT range AS i FROM range($first, $last)),
    shaped AS (
        SELECT i, 1 + hash(i) % $recipients AS sid, hash(i * 7 + 1) % 1000 AS dice
        FROM e
    )
    SELECT 'ev' || i AS event_id,
           CASE WHEN dice < 690 THEN 'open' WHEN dice < 995 THEN 'click' WHEN dice < 997 THEN 'unsubscribe'
                WHEN dice < 999 THEN 'bounce' ELSE 'complaint' END AS type,
           'c' || lpad(((sid // $per_chunk) % $campaigns)::VARCHAR, 2, '0') AS campaign_id, sid AS subscriber_id,
           CASE WHEN sid % 2 = 0 THEN 'A' ELSE 'B' END AS variant,
           CASE WHEN dice >= 690 AND dice < 995 THEN (dice % 5)::INTEGER END AS link,
           CASE WHEN dice >= 690 AND dice < 995 THEN 'https://shop.example.com/p/' || (dice % 5) END AS url,
           strftime(TIMESTAMPTZ '2026-12-01 09:00:00+00' + to_milliseconds((sid * 7 + 300 + hash(i) % 86400000)::BIGINT),
                    '%Y-%m-%dT%H:%M:%S.%f+00:00') AS occurred_at,
           CASE WHEN dice % 10 < 3 THEN '17.58.' || (dice % 200) || '.0' WHEN dice % 10 = 3 THEN '66.249.84.0'
                ELSE (10 + dice % 200) || '.' || (sid % 250) || '.' || (i % 250) || '.0' END AS ip,
           CASE WHEN dice % 10 < 3 THEN 'Mozilla/5.0'
                WHEN dice % 10 = 3 THEN 'Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)'
                WHEN dice % 50 = 4 THEN 'Mozilla/5.0 Barracuda Sentinel'
                ELSE 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)' END
               AS user_agent,
           CASE WHEN dice >= 997 AND dice < 999 THEN (CASE WHEN dice = 997 THEN 'hard' ELSE 'soft' END)
                WHEN dice >= 999 THEN 'complaint' END AS kind,
           CASE WHEN dice >= 997 THEN 'user_unknown' END AS reason,
           -- the fields outside events' columns under `data`, as the writers put them (mailflow/event_line.py)
           CASE WHEN dice >= 995 AND dice < 997 THEN json_object('method', 'link')
                WHEN dice >= 997 THEN json_object('source', 'webhook:ses', 'unmapped', false) END AS data
    FROM shaped
) TO '{path}' (FORMAT JSON)
"""


def generate(source: Path, events: int, records: int) -> None:
    """The ledgers and event logs, written by DuckDB (a Python loop would take minutes at 10M)."""
    if (source / "done").exists():
        return
    shutil.rmtree(source, ignore_errors=True)
    recipients = max(records // 2, 1)
    log(f"aggregate bench: writing {label(records)} ledger records and {label(events)} events to {source}")
    con = quiet()
    params = {"recipients": recipients, "per_chunk": PER_CHUNK}
    for chunk in range(recipients // PER_CHUNK + 1):
        campaign = campaign_of(chunk)
        path = source / "ledger" / campaign / f"chunk-{chunk:05d}.ndjson"
        path.parent.mkdir(parents=True, exist_ok=True)
        con.execute(LEDGER_SQL.format(path=path), params | {"chunk": chunk, "campaign": campaign})
    write_events(con, source / "events", 0, events, recipients)
    (source / "done").write_text("")


def quiet() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    return con


def campaign_of(chunk: int) -> str:
    return f"c{chunk % CAMPAIGNS:02d}"


def write_events(con: duckdb.DuckDBPyConnection, folder: Path, first: int, last: int, recipients: int,
                 prefix: str = "track") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(first, last, EVENTS_PER_FILE)):
        path = folder / f"{prefix}-{first}-{n}.ndjson"
        con.execute(EVENTS_SQL.format(path=path), {"first": start, "last": min(start + EVENTS_PER_FILE, last),
                                                   "recipients": recipients, "campaigns": CAMPAIGNS,
                                                   "per_chunk": PER_CHUNK})


def workspace(source: Path, work: Path) -> Path:
    """A home whose ledgers and event logs are the cached files (linked, never written) in a fresh folder."""
    shutil.rmtree(work, ignore_errors=True)
    home = work / "home"
    (home / "events").mkdir(parents=True)
    (home / "ledger").symlink_to(source / "ledger")
    for path in sorted((source / "events").glob("*.ndjson")):
        (home / "events" / path.name).symlink_to(path)
    return home


def cpu_seconds() -> float:
    """This process's CPU time: with other work on the machine, wall time says more about it than about us."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def baseline(source: Path) -> tuple[float, float]:
    """Bare DuckDB over the same files: count per campaign, nothing kept; (wall, CPU) seconds."""
    con = quiet()
    start, cpu = time.perf_counter(), cpu_seconds()
    for folder in ("events/*.ndjson", "ledger/*/*.ndjson"):
        con.execute(f"SELECT campaign_id, count(*) FROM read_json('{source / folder}', format = 'newline_delimited') "
                    "GROUP BY campaign_id").fetchall()
    return time.perf_counter() - start, cpu_seconds() - cpu


def measure(events: int = EVENTS, records: int = RECORDS, new_events: int = NEW_EVENTS,
            out: Path = OUT) -> dict:
    source = out / f"aggregate-{label(events)}-{label(records)}-{FORMAT}"
    generate(source, events, records)
    home = workspace(source, out / "aggregate-work")
    settings = load_settings(overrides={"home": str(home)}, environ={})
    with connect(settings.warehouse, memory_limit=settings.aggregate.memory_limit) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute("INSERT INTO subscribers (subscriber_id, email, email_original) "
                    "SELECT range, 'u' || range || '@example.com', 'u' || range || '@example.com' "
                    "FROM range(1, $n + 1)", {"n": max(records // 2, 1)})
        log("aggregate bench: full load")
        timed = TimedConnection(con, "aggregate full") if PROFILE else con
        start, cpu = time.perf_counter(), cpu_seconds()
        full = load_logs(timed, settings)
        full_s, full_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        if PROFILE:
            timed.report(full_s, full_cpu)
        write_events(quiet(), home / "events", events, events + new_events, max(records // 2, 1), "new")
        timed = TimedConnection(con, "aggregate incremental") if PROFILE else con
        start, cpu = time.perf_counter(), cpu_seconds()
        step = load_logs(timed, settings)
        step_s, step_cpu = time.perf_counter() - start, cpu_seconds() - cpu
        if PROFILE:
            timed.report(step_s, step_cpu)
        counts = con.execute("SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events WHERE is_machine), "
                             "(SELECT count(*) FROM delivery_attempts), (SELECT count(*) FROM deliveries)").fetchone()
    shutil.rmtree(out / "aggregate-work", ignore_errors=True)
    base, base_cpu = baseline(source)
    return {"full": full_s, "step": step_s, "baseline": base, "full_cpu": full_cpu, "step_cpu": step_cpu,
            "baseline_cpu": base_cpu, "loaded": full, "incremental": step,
            "events": counts[0], "machine": counts[1], "attempts": counts[2], "deliveries": counts[3]}


def rows_for(facts: dict, events: int = EVENTS, records: int = RECORDS, new_events: int = NEW_EVENTS) -> list[dict]:
    base = facts["baseline"]
    problem = None
    if facts["events"] != events + new_events or facts["attempts"] != 2 * max(records // 2, 1):
        problem = (f"aggregate bench: {facts['events']:,} events and {facts['attempts']:,} attempts loaded, "
                   f"expected {events + new_events:,} and {2 * max(records // 2, 1):,}")
    note = (f"{facts['machine']:,} of {facts['events']:,} events flagged machine; targets: full < {TARGET_FULL:g} s, "
            f"incremental < {TARGET_INCREMENTAL:g} s; CPU s (full / incremental / baseline): {facts['full_cpu']:.1f} / "
            f"{facts['step_cpu']:.1f} / {facts['baseline_cpu']:.1f}")
    return [
        row(f"aggregate full, {label(events)} events + {label(records)} ledger records", facts["full"], "s",
            "read_json + GROUP BY", facts["full"] / base, problem=problem, note=note),
        row(f"aggregate incremental, {label(new_events)} new events", facts["step"], "s", "read_json + GROUP BY",
            facts["step"] / base),
        row("bare read_json + GROUP BY campaign_id, same files", base, "s"),
        row("aggregate full, CPU time", facts["full_cpu"], "s", "read_json CPU", facts["full_cpu"] / facts["baseline_cpu"]),
    ]


def run() -> list[dict]:
    return rows_for(measure())


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['figure']:.2f} {r['unit']}" + (f" ({r['ratio']:.2f}x baseline)" if r["ratio"] else ""))
        if r.get("note"):
            print(f"  {r['note']}")
