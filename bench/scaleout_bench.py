"""Scale-out benchmark (issue 14 part 6): one Prefect worker against two, sending one campaign's chunks to smtp-sink.

Each worker runs one chunk at a time (`--limit 1`), so one worker stands for one core and two for two;
both use this machine's 2 cores, which they share with the sink, the Prefect server and the command
following the send, so the ratio is a floor, not the scaling of machines that each have their own cores.
Figures, never asserted:
- the sending rate: recipients / (last ledger record - first), chunk runs' start-up excluded;
- the wall clock of `mailflow send --via-workers`, start-up of every chunk's flow run included;
- the per-core rate (the one-worker sending rate) and what N machines would send by a linear model.
Messages are the `newsletter` template with tracking and DKIM RSA-2048, as a real campaign sends them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from bench import log, row
from bench.send_naive import free_port, rsa_key_pem, start_sink, stop
from tests.support.commands import planned_campaign
from tests.support.prefect_server import PREFECT, PrefectServer, start_worker, stop_process

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_SCALEOUT_N", "24000"))
CHUNK = int(os.environ.get("BENCH_SCALEOUT_CHUNK", "6000"))  # large: a chunk's flow run costs seconds to start
RATE = float(os.environ.get("BENCH_SCALEOUT_RATE", "150"))  # send.rate for the run that checks the global limit
RATE_N = int(os.environ.get("BENCH_SCALEOUT_RATE_N", "4000"))
CORES_PER_MACHINE = 2
MACHINES = (2, 10, 50)
POOL = "scaleout-bench"
TIMEOUT = 1800.0


def command(args: list[str], env: dict) -> str:
    done = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} exited {done.returncode}: {done.stderr.strip()[-1500:]}")
    return done.stdout


def sending_seconds(home: Path) -> tuple[int, float]:
    """(final outcomes logged, seconds in which some chunk was sending): the union of the chunks' spans from
    first ledger record to last, so the start-up of a chunk's flow run between two chunks does not count."""
    spans, outcomes = [], 0
    for path in (home / "ledger" / "stopped").glob("*.ndjson"):
        records = [json.loads(line) for line in path.open()]
        outcomes += sum(r["status"] != "in_flight" for r in records)
        stamps = [datetime.fromisoformat(r["logged_at"]).timestamp() for r in records]
        spans.append((min(stamps), max(stamps)))
    busy, reached = 0.0, float("-inf")
    for start, end in sorted(spans):
        busy += max(0.0, end - max(start, reached))
        reached = max(reached, end)
    log(f"  chunk spans (s): {', '.join(f'{e - s:.1f}' for s, e in sorted(spans))}; busy {busy:.1f} s")
    return outcomes, busy


def send_with_workers(server: PrefectServer, env: dict, workers: int, work: Path, n: int = N,
                      chunk: int = CHUNK) -> tuple[float, float, float]:
    """(sending msgs/s, end-to-end msgs/s, seconds of the end-to-end time no chunk was sending) of one
    campaign of `n` recipients sent by `workers` workers of one run at a time each."""
    work.mkdir()
    home, _ = planned_campaign(work, recipients=n, chunk_size=chunk)
    mailflow = [sys.executable, "-m", "mailflow.cli", "--home", str(home)]
    procs = [start_worker(server.api_url, POOL, ROOT, env, limit=1) for _ in range(workers)]
    try:
        start = time.perf_counter()
        out = json.loads(command([*mailflow, "--json", "send", "stopped", "--via-workers", "--skip-preflight"], env))
        wall = time.perf_counter() - start
    finally:
        for proc in procs:
            stop_process(proc)
            proc.log_path.unlink()
    outcomes, seconds = sending_seconds(home)
    if outcomes != n or out.get("delivered") != n:
        raise RuntimeError(f"{workers} workers: {outcomes} outcomes logged, {out.get('delivered')} delivered of {n}")
    return n / seconds, n / wall, wall - seconds


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="scaleout-bench-") as tmp:
        work, port = Path(tmp), free_port()
        sink = start_sink(port)
        try:
            with PrefectServer(work / "prefect") as server:
                env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
                env.update(PREFECT_API_URL=server.api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="1",
                           MAILFLOW_REPO=str(ROOT), MAILFLOW_TRACKING__SECRET="bench-secret",
                           MAILFLOW_SMTP__POOLS__DEFAULT__RELAYS=f'["127.0.0.1:{port}"]',
                           MAILFLOW_SMTP__POOLS__DEFAULT__CONNECTIONS="8", MAILFLOW_DKIM__DOMAIN="example.com",
                           MAILFLOW_DKIM__SELECTOR="bench", MAILFLOW_DKIM__PRIVATE_KEY=rsa_key_pem())
                command([*PREFECT, "work-pool", "create", POOL, "--type", "process"], env)
                command([*PREFECT, "--no-prompt", "deploy", "--name", "send-chunk", "--pool", POOL], env)
                log(f"scaleout: {N} recipients in chunks of {CHUNK}, one worker")
                one, one_wall, one_idle = send_with_workers(server, env, 1, work / "one")
                log("scaleout: two workers")
                two, two_wall, _ = send_with_workers(server, env, 2, work / "two")
                log(f"scaleout: two workers under send.rate = {RATE:g} (the global limit)")
                limited = {**env, "MAILFLOW_SEND__RATE": str(RATE)}
                command([sys.executable, "-m", "mailflow.cli", "--home", str(work / "one" / "home"), "init"], limited)
                held = send_with_workers(server, limited, 2, work / "rate", RATE_N, RATE_N // 2)[0]
        finally:
            stop(sink)
    base = "1 worker"
    rows = [row(f"scaleout: 1 worker, {N} recipients, sending (per-core rate)", one, "msgs/s"),
            row("scaleout: 2 workers, sending", two, "msgs/s", base, two / one,
                note="2 workers on 2 cores share them with smtp-sink, the Prefect server and the command: a floor"),
            row("scaleout: 1 worker, end to end (chunk runs' start-up included)", one_wall, "msgs/s", base, one_wall / one),
            row("scaleout: 2 workers, end to end", two_wall, "msgs/s", base, two_wall / one),
            row(f"scaleout: 2 workers under send.rate = {RATE:g}, sending", held, "msgs/s", "send.rate", held / RATE,
                note="the global limit holds across workers when the ratio is near 1 (its burst, one second's worth, "
                     "lifts it a little)"),
            row("scaleout: 1 worker, seconds per chunk run not sending (start-up, preflight, follow-up)",
                one_idle / -(-N // CHUNK), "s")]
    for machines in MACHINES:
        rows.append(row(f"scaleout: {machines} machines x {CORES_PER_MACHINE} cores (linear model)",
                        one * CORES_PER_MACHINE * machines, "msgs/s", base, CORES_PER_MACHINE * machines,
                        note=None if machines != MACHINES[0] else
                        "per-core rate x cores; relays, shared storage and the rate limit's API calls not modelled"))
    return rows

