"""Ingest benchmark: mailflow's ingest_file of a seeded CSV, vs DuckDB's own read_csv of the same file,
and of three small hostile files (issue 8) that once cost minutes and gigabytes.

mailflow runs in a subprocess (`python -m bench.ingest_bench child ...`), so its wall time
includes the Python imports a `mailflow ingest` run pays, and its peak RSS is its own.
Prefect is imported (mailflow.tasks.ingest.ingest needs it) but not run: the plain function is called.
`python -m bench.ingest_bench hostile` runs only the hostile files.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import label, log, row

ROOT = Path(__file__).resolve().parent.parent
ROWS = int(os.environ.get("BENCH_INGEST_ROWS", "1000000"))
ROWS_LARGE = int(os.environ.get("BENCH_INGEST_ROWS_LARGE", "10000000"))
TIMEOUT = float(os.environ.get("BENCH_INGEST_TIMEOUT", "3600"))
FLOOR_RUNS = 3            # DuckDB's read is quick: the median of a few runs
LIST_NAME = "bench"
TARGET_SECONDS = 15.0     # the targets for the 1M file on the 2-core machine
TARGET_REINGEST_SECONDS = 5.0
TARGET_RSS_MB = 4096.0    # for the large file
HOSTILE_SECONDS = 60.0    # each hostile file: refused or ingested within a minute
HOSTILE_COPIES = int(os.environ.get("BENCH_HOSTILE_COPIES", "10000000"))


def run() -> list[dict]:
    from bench.gen_subscribers import write_subscribers_fast

    work = Path(tempfile.mkdtemp(prefix="mailflow-bench-ingest-"))
    try:
        small = generate(write_subscribers_fast, work / f"subscribers-{label(ROWS)}.csv", ROWS)
        floor = statistics.median(duckdb_floor(small, ROWS) for _ in range(FLOOR_RUNS))

        log(f"ingest: mailflow, {label(ROWS)} rows into a fresh warehouse (subprocess)")
        warehouse = work / "warehouse.duckdb"
        first = child_ingest(small, warehouse, work / "home")
        log("ingest: re-ingest of the same file into the same warehouse (subprocess)")
        again = child_ingest(small, warehouse, work / "home")
        log(f"ingest: warehouse after {label(ROWS)} rows: {warehouse.stat().st_size / 2**20:.0f} MB")
        small.unlink()

        large = generate(write_subscribers_fast, work / f"subscribers-{label(ROWS_LARGE)}.csv", ROWS_LARGE)
        floor_large = duckdb_floor(large, ROWS_LARGE)
        log(f"ingest: mailflow, {label(ROWS_LARGE)} rows into a fresh warehouse (subprocess)")
        big = child_ingest(large, work / "warehouse-large.duckdb", work / "home-large")
    finally:
        if os.environ.get("BENCH_KEEP"):
            log(f"ingest: BENCH_KEEP set, data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)

    n, nl = label(ROWS), label(ROWS_LARGE)
    result = first["result"]
    problem = balance_problem(result, ROWS, n)
    reingest_problem = None
    if not again["result"]["already_ingested"]:
        reingest_problem = f"re-ingest of the unchanged {n} file did not report already_ingested: {summary(again)}"
    elif again["result"]["rows_read"] != result["rows_read"]:
        reingest_problem = f"re-ingest reports {again['result']['rows_read']} rows read, the first ingest {result['rows_read']}"
    large_problem = balance_problem(big["result"], ROWS_LARGE, nl)
    rows = [
        row(f"ingest: DuckDB read_csv -> CTAS in-memory, {n} rows (floor)", floor, "s", "-", 1.0),
        row(f"ingest: DuckDB read_csv -> CTAS rate, {n} rows", ROWS / floor, "rows/s"),
        with_target(row(f"ingest: mailflow {n} end to end, subprocess incl. imports (target < {TARGET_SECONDS:.0f} s)",
                        first["wall"], "s", "DuckDB floor", first["wall"] / floor, problem), TARGET_SECONDS),
        row(f"ingest: mailflow {n} ingest_file in-process (IngestResult.seconds)", result["seconds"], "s",
            "DuckDB floor", result["seconds"] / floor, problem),
        row(f"ingest: mailflow {n} imports + connect/migrate (in the end-to-end figure)",
            first["import_s"] + first["connect_s"], "s"),
        row(f"ingest: mailflow {n} rate, ingest_file", result["rows_read"] / result["seconds"], "rows/s",
            "DuckDB floor", (result["rows_read"] / result["seconds"]) / (ROWS / floor), problem),
        row(f"ingest: mailflow {n} rows quarantined", result["quarantined"], f"of {result['rows_read']} rows",
            "-", result["quarantined"] / max(result["rows_read"], 1), problem),
        with_target(row(f"ingest: mailflow re-ingest unchanged {n} file, subprocess incl. imports "
                        f"(target < {TARGET_REINGEST_SECONDS:.0f} s)", again["wall"], "s", "DuckDB floor",
                        again["wall"] / floor, reingest_problem), TARGET_REINGEST_SECONDS),
        row(f"ingest: mailflow re-ingest {n}, ingest_file call (hash + lookup)", again["call_s"], "s",
            "DuckDB floor", again["call_s"] / floor, reingest_problem),
        row(f"ingest: DuckDB read_csv -> CTAS in-memory, {nl} rows (floor)", floor_large, "s", "-", 1.0),
        row(f"ingest: mailflow {nl} end to end, subprocess incl. imports", big["wall"], "s", "DuckDB floor",
            big["wall"] / floor_large, large_problem),
        row(f"ingest: mailflow {nl} ingest_file in-process (IngestResult.seconds)", big["result"]["seconds"], "s",
            "DuckDB floor", big["result"]["seconds"] / floor_large, large_problem),
        with_target(row(f"ingest: mailflow {nl} peak RSS (target < {TARGET_RSS_MB:.0f} MB)", big["maxrss_mb"], "MB",
                        problem=large_problem), TARGET_RSS_MB),
        row(f"ingest: mailflow {nl} rows quarantined", big["result"]["quarantined"],
            f"of {big['result']['rows_read']} rows", "-",
            big["result"]["quarantined"] / max(big["result"]["rows_read"], 1), large_problem),
    ]
    return rows + hostile()


def hostile() -> list[dict]:
    """Peak RSS and time of the inputs issue 8 found: each must be bounded, whatever its size inflates to."""
    work = Path(tempfile.mkdtemp(prefix="mailflow-bench-hostile-"))
    rows = []
    try:
        wide = work / "wide.csv"  # 150k columns, under the line limit: the width check decides
        wide.write_text("email," + ",".join(f"c{i % 1000}" for i in range(150_000)) + "\n", encoding="utf-8")
        bomb = work / "bomb.csv.gz"  # one 200 MB line between good rows
        with gzip.open(bomb, "wb", compresslevel=9) as out:
            out.write(b"email,first_name,last_name,country\nann@example.com,Ann,Lee,JP\nbob@example.com,")
            for _ in range(200):
                out.write(b"x" * (1 << 20))
            out.write(b",Lee,JP\ncid@example.com,Cid,Lee,JP\n")
        same = work / "same.csv.gz"  # millions of copies of one bad row
        with gzip.open(same, "wb", compresslevel=9) as out:
            out.write(b"email,first_name,last_name,country\n")
            for start in range(0, HOSTILE_COPIES, 1_000_000):
                out.write(b"not-an-email,Ann,Lee,JP\n" * min(1_000_000, HOSTILE_COPIES - start))
        cases = [(f"wide header, 150k columns ({size_label(wide)})", wide, ("680 s before", "4.6 GB before")),
                 (f"gzip bomb, one 200 MB line ({size_label(bomb)})", bomb, ("-", "4.16 GB before")),
                 (f"{label(HOSTILE_COPIES)} identical bad rows ({size_label(same)})", same, ("-", "-"))]
        for name, path, (before_s, before_mb) in cases:
            log(f"ingest: hostile input {name}")
            report = child_ingest(path, work / f"{path.stem}.duckdb", work / "home", expect_error=path is wide)
            outcome = report.get("error") or (f"read {report['result']['rows_read']}, quarantined "
                                              f"{report['result']['quarantined']} in {report['entries']} entries")
            log(f"ingest: {name}: {outcome}; {report['wall']:.1f}s, peak RSS {report['maxrss_mb']:.0f} MB")
            problem = None if report["wall"] < HOSTILE_SECONDS else f"{name}: {report['wall']:.0f} s"
            rows += [with_target(row(f"ingest hostile: {name}, wall (target < {HOSTILE_SECONDS:.0f} s)", report["wall"],
                                     "s", before_s, problem=problem), HOSTILE_SECONDS),
                     row(f"ingest hostile: {name}, peak RSS", report["maxrss_mb"], "MB", before_mb, problem=problem)]
            if path is same:
                entries = report["entries"]
                rows.append(row(f"ingest hostile: {name}, quarantine entries", entries, "rows",
                                f"{HOSTILE_COPIES:,} before", problem=None if entries == 1 else f"{name}: {entries} entries"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def size_label(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


def generate(writer, path: Path, n: int) -> Path:
    start = time.perf_counter()
    writer(path, n)
    log(f"ingest: generated {path.name}: {n} rows, {path.stat().st_size / 2**20:.0f} MB "
        f"in {time.perf_counter() - start:.1f}s")
    return path


def duckdb_floor(path: Path, n: int) -> float:
    """Seconds for DuckDB alone to read the file into a table of a fresh in-memory database."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        start = time.perf_counter()
        con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv({sql_text(str(path))})")
        elapsed = time.perf_counter() - start
        loaded = con.execute("SELECT count(*) FROM t").fetchone()[0]
    finally:
        con.close()
    if loaded != n:
        raise RuntimeError(f"DuckDB read {loaded} rows of {path}, the generator wrote {n}")
    log(f"ingest: DuckDB read_csv of {path.name}: {elapsed:.2f}s")
    return elapsed


def child_ingest(path: Path, warehouse: Path, home: Path, expect_error: bool = False) -> dict:
    """Run `child` in a fresh interpreter; its JSON report plus the wall time the parent saw."""
    cmd = [sys.executable, "-m", "bench.ingest_bench", "child", str(path), str(warehouse), str(home), LIST_NAME]
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"mailflow ingest of {path.name} exited {done.returncode}:\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    report["wall"] = wall
    if "error" in report:
        if not expect_error:
            raise RuntimeError(f"mailflow ingest of {path.name} refused the file: {report['error']}")
        return report
    if expect_error:
        raise RuntimeError(f"mailflow ingest of {path.name} did not refuse the file: {summary(report)}")
    log(f"ingest: {summary(report)}")
    return report


def child(path: str, warehouse: str, home: str, list_name: str) -> None:
    """The measured process: import mailflow, open the warehouse, ingest one file, report as JSON."""
    import resource

    start = time.perf_counter()
    from mailflow.cli import prefect_env

    prefect_env.prepare()
    from mailflow.errors import MailflowError
    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file

    imported = time.perf_counter()
    with connect(warehouse) as con:
        connected = time.perf_counter()
        try:
            result = ingest_file(con, Path(path), IngestOptions(list_name=list_name), Path(home))
        except MailflowError as exc:  # a refused file: the refusal is the figure
            print(json.dumps({"error": str(exc), "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
            return
        called = time.perf_counter()
        entries = con.execute("SELECT count(*) FROM quarantine").fetchone()[0]
    closed = time.perf_counter()
    out = result.as_dict()
    batches = len(out.pop("validation", None) or [])  # one validation run per batch the reader yielded
    print(json.dumps({
        "result": out, "batches": batches, "entries": entries, "import_s": imported - start,
        "connect_s": connected - imported, "call_s": called - connected,
        "close_s": closed - called, "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)


def balance_problem(result: dict, n: int, size: str) -> str | None:
    parts = result["accepted"] + result["updated"] + result["unchanged"] + result["quarantined"]
    if result["rows_read"] != parts:
        return (f"{size} ingest: rows_read {result['rows_read']} != accepted+updated+unchanged+quarantined {parts} "
                f"({result['accepted']}+{result['updated']}+{result['unchanged']}+{result['quarantined']})")
    if result["rows_read"] != n:
        return f"{size} ingest: rows_read {result['rows_read']}, the file has {n} rows"
    return None


def summary(report: dict) -> str:
    r = report["result"]
    inside = report["import_s"] + report["connect_s"] + report["call_s"] + report["close_s"]
    return (f"wall {report['wall']:.2f}s (imports {report['import_s']:.2f}s, connect {report['connect_s']:.2f}s, "
            f"ingest_file {report['call_s']:.2f}s, close {report['close_s']:.2f}s, interpreter start/exit "
            f"{report['wall'] - inside:.2f}s), peak RSS {report['maxrss_mb']:.0f} MB; {report['batches']} batches; "
            f"read {r['rows_read']}, new {r['accepted']}, updated {r['updated']}, unchanged {r['unchanged']}, "
            f"quarantined {r['quarantined']}, already_ingested {r['already_ingested']}")


def with_target(out: dict, target: float) -> dict:
    out["target"] = target  # kept in results.json; the table shows it in the label
    return out


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


if __name__ == "__main__":
    if sys.argv[1:] == ["hostile"]:
        from bench.__main__ import table

        print(table(hostile()))
    elif sys.argv[1:2] != ["child"] or len(sys.argv) != 6:
        sys.exit("usage: python -m bench.ingest_bench child CSV WAREHOUSE HOME LIST_NAME | hostile")
    else:
        child(*sys.argv[2:])
