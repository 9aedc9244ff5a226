"""Send benchmark (issue 4): mailflow's send path against Postfix's smtp-sink on loopback.

Baselines are measured in the same run; figures and ratios are printed, never asserted:
1. smtp-source -> smtp-sink, messages of the mean size mailflow composes here: the transport limit;
2. the naive loop (bench/send_naive.py: Jinja2, EmailMessage, dkimpy, smtplib; one process);
3. mailflow end to end: BENCH_SEND_N recipients of the `digest` template, tracking on, DKIM
   RSA-2048, planned into chunk files as tasks/plan/audience.py writes them and sent as
   flows/send_campaign.py sends them (a spawned process per core, asyncio.run(send_chunk(...))
   per chunk). The send stage runs in a subprocess of its own, standing in for the flow
   process, so its peak RSS and its workers' belong to that campaign alone;
4. peak memory of a BENCH_SEND_MEMORY_N-recipient campaign (0 skips it).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from itertools import islice, repeat
from pathlib import Path

import polars as pl

from bench import row
from bench.gen_subscribers import rows as subscriber_rows
from bench.send_naive import CONNECTIONS, free_port, postfix_tool, source_rate, start_sink, stop

ROOT = Path(__file__).resolve().parent.parent
N = int(os.environ.get("BENCH_SEND_N", "100000"))
NAIVE_N = int(os.environ.get("BENCH_SEND_NAIVE_N", "3000"))
MEMORY_N = int(os.environ.get("BENCH_SEND_MEMORY_N", "1000000"))
MEMORY_TARGET_MB = 1024.0  # the issue: under 1 GB for a 1M-recipient campaign
TIMEOUT = float(os.environ.get("BENCH_SEND_TIMEOUT", "3600"))  # per sender subprocess
BASELINE_RUNS = 3     # smtp-source is quick: take the median of a few runs
SAMPLE = 200          # composed messages spread over the campaign: mean size and dkimpy checks
DKIM_DOMAIN, DKIM_SELECTOR = "example.com", "bench"
SCHEMA = {"chunk_id": pl.Int32, "subscriber_id": pl.Int64, "variant": pl.String, "email": pl.String,
          "first_name": pl.String, "last_name": pl.String, "attributes": pl.String}  # plan.sql chunk_rows


def campaign(label: str):
    from mailflow.tasks.plan.campaign import CampaignSpec

    return CampaignSpec(name=f"Bench digest {label}", campaign_id=f"bench-digest-{label}",
                        from_addr="News <news@example.com>", subject="{{ subscriber.first_name }}, your weekly digest",
                        template="digest")  # tracking defaults on: click rewriting and the open pixel


def plan_chunks(home: Path, spec, n: int, chunk_size: int, domain_of=None) -> list[dict]:
    """Chunk files, then the manifest, as tasks/plan/audience.py writes them, generated a chunk at a time
    (so that a 1M campaign never sits in memory here); returns SAMPLE rows spread over the campaign.
    `domain_of(subscriber_id)`, when given, picks each address's domain (bench/shaping_bench.py)."""
    from mailflow.tasks.files.manifest import MANIFEST, campaign_dir

    out = campaign_dir(home, spec.campaign_id)
    (out / "chunks").mkdir(parents=True, exist_ok=True)
    people = subscriber_rows(n, bad_fraction=0.0, reject_fraction=0.0)  # varied names, countries, plans
    every, names, sample = max(1, n // SAMPLE), [], []
    for chunk_id, first in enumerate(range(0, n, chunk_size)):
        part = [{"chunk_id": chunk_id, "subscriber_id": first + k + 1, "variant": "A",
                 "email": r["email"] if domain_of is None else f"{r['email'].partition('@')[0]}@{domain_of(first + k + 1)}",
                 "first_name": r["first_name"], "last_name": r["last_name"],
                 "attributes": json.dumps({key: r[key] for key in ("country", "plan", "signup_date")})}
                for k, r in enumerate(islice(people, chunk_size))]
        sample += [r for r in part if (r["subscriber_id"] - 1) % every == 0]
        names.append(f"chunk-{chunk_id:05d}.parquet")
        _atomic(out / "chunks" / names[-1], lambda p, part=part: pl.DataFrame(part, schema=SCHEMA).write_parquet(p))
    manifest = {"spec": spec.as_dict(), "chunks": names, "audience_size": n}
    _atomic(out / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2), encoding="utf-8"))
    return sample


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def send_one(settings, spec, chunk: Path) -> dict[str, int]:
    """One chunk in a pool worker, as send_chunk_task runs it."""
    from mailflow.tasks.send.chunk import send_chunk

    return asyncio.run(send_chunk(settings, spec, chunk))


def sender_main() -> None:
    """The flow's send stage, in this process: load the plan, preflight, then a process per core.

    Reads {"overrides", "campaign_id"} as JSON on stdin and prints its figures as JSON.
    """
    job = json.load(sys.stdin)
    from mailflow.cli import prefect_env
    prefect_env.prepare()
    from mailflow.settings import load_settings
    from mailflow.tasks.send.chunk import load_plan, preflight

    settings = load_settings(overrides=job["overrides"])
    workers = os.cpu_count() or 2
    start = time.perf_counter()
    spec, planned = load_plan(settings, job["campaign_id"])
    chunks = [c.path for c in planned]
    preflight(settings, spec, chunks[0], 20)
    # spawn, as Prefect's ProcessPoolTaskRunner does: workers share no pages with this process
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        counts = sum((Counter(c) for c in pool.map(send_one, repeat(settings), repeat(spec), chunks)), Counter())
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "counts": counts, "workers": workers, "chunks": len(chunks),
                      "parent_mb": peak_rss_mb(resource.RUSAGE_SELF),
                      "child_mb": peak_rss_mb(resource.RUSAGE_CHILDREN)}))  # the largest worker


def run_sender(overrides: dict, campaign_id: str) -> dict:
    proc = subprocess.Popen([sys.executable, "-c", "from bench.send_bench import sender_main; sender_main()"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # a group of its own, with its workers
    try:
        out, err = proc.communicate(json.dumps({"overrides": overrides, "campaign_id": campaign_id}), timeout=TIMEOUT)
    finally:
        if proc.poll() is None or proc.returncode != 0:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the sender or a worker left behind
            except ProcessLookupError:
                pass
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"sender exited {proc.returncode}: {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def read_ledger(ledger_dir: Path) -> tuple[int, int, Counter]:
    """(records, distinct subscribers, final statuses) over a campaign's ledger files; a subscriber's
    final status is its last record's (an in-flight mark comes before its outcome)."""
    records, final = 0, {}
    for path in sorted(ledger_dir.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            records += 1
            final[record["subscriber_id"]] = record["status"]
    return records, len(final), Counter(final.values())


def send_planned(home: Path, overrides: dict, spec, n: int) -> tuple[dict, Counter, str | None]:
    """Send a planned n-recipient campaign; (sender figures, ledger statuses, problem)."""
    log(f"send: mailflow, {n} recipients, a process per core x {CONNECTIONS} conns")
    figures = run_sender(overrides, spec.campaign_id)
    records, subscribers, statuses = read_ledger(home / "ledger" / spec.campaign_id)
    problem = None
    if subscribers != n or statuses["delivered"] != n:
        problem = (f"{n}-recipient send: ledger has {records} records for {subscribers} subscribers; "
                   f"statuses {dict(statuses)}; send_chunk counts {figures['counts']}")
    log(f"send: {figures}")
    return figures, statuses, problem


def run() -> list[dict]:
    postfix_tool("smtp-sink"), postfix_tool("smtp-source")
    from mailflow.cli import prefect_env
    prefect_env.prepare()
    from bench.send_naive import dkim_verified, naive_send, rsa_key_pem
    from mailflow.settings import load_settings
    from mailflow.tasks.compose.dkim import dns_record
    from mailflow.tasks.compose.message import envelope_sender
    from mailflow.tasks.send.chunk import composer_for

    pem = rsa_key_pem(2048)
    home = Path(tempfile.mkdtemp(prefix="mailflow-bench-send-"))
    port = free_port()
    sink = start_sink(port)
    try:
        overrides = {
            "home": str(home),
            "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"], "connections": CONNECTIONS}}},
            "dkim": {"domain": DKIM_DOMAIN, "selector": DKIM_SELECTOR},
            "tracking": {"base_url": "https://t.example.com"},
        }
        # Secrets come from the environment, never overrides; the sender process and its workers inherit it
        os.environ.update({"MAILFLOW_TRACKING__SECRET": "bench", "MAILFLOW_DKIM__PRIVATE_KEY": pem})
        settings = load_settings(overrides=overrides)
        chunk_size = settings.send.chunk_size
        spec = campaign(f"{N}")
        sample = plan_chunks(home, spec, N, chunk_size)
        composer = composer_for(settings, spec)
        composed = [composer.compose(r).data for r in sample]
        size = round(statistics.mean(len(m) for m in composed))
        verified, checked = dkim_verified(composed, DKIM_SELECTOR, DKIM_DOMAIN, dns_record(composer.dkim.key))

        log(f"send: smtp-source, {N} messages of {size} B over {CONNECTIONS} sessions, {BASELINE_RUNS} runs")
        base = statistics.median(source_rate(port, N, size, envelope_sender(spec.from_addr), settings.smtp.helo)
                                 for _ in range(BASELINE_RUNS))

        naive_n = min(NAIVE_N, N)
        log(f"send: naive loop, {naive_n} recipients, one process, one connection")
        chunk_dir = home / "campaigns" / spec.campaign_id / "chunks"
        paths = sorted(chunk_dir.glob("chunk-*.parquet"))[:-(-naive_n // chunk_size)]
        people = pl.concat([pl.read_parquet(p) for p in paths]).head(naive_n).iter_rows(named=True)
        sent, seconds, naive_bytes = naive_send(composer, people, "127.0.0.1", port, settings.smtp.helo,
                                                DKIM_SELECTOR, DKIM_DOMAIN, pem)
        naive = sent / seconds

        figures, statuses, problem = send_planned(home, overrides, spec, N)
        rate = N / figures["seconds"]
        procs = f"{figures['workers']} processes x {CONNECTIONS} conns"
        rows = [
            row(f"send: composed message size (digest, tracking, DKIM; mean of {len(composed)})", size, "bytes"),
            row(f"send: smtp-source -> smtp-sink (transport limit, {CONNECTIONS} conns)", base, "msgs/s", "-", 1.0),
            row("send: naive loop message size (EmailMessage + dkimpy, mean)", naive_bytes / sent, "bytes"),
            row(f"send: naive loop (Jinja2+EmailMessage+dkimpy+smtplib, 1 process, 1 conn, {sent} msgs)", naive,
                "msgs/s", "smtp-source", naive / base),
            row(f"send: mailflow end to end ({N} msgs, {procs})", rate, "msgs/s", "smtp-source", rate / base, problem),
            row(f"send: mailflow end to end ({N} msgs, {procs})", rate, "msgs/s", "naive loop", rate / naive, problem),
            row("send: mailflow ledger delivered", statuses["delivered"], f"of {N}", "-", statuses["delivered"] / N,
                problem),
            row("send: DKIM verified by dkimpy (sample of composed messages)", verified, f"of {checked}", "-",
                verified / checked, None if verified == checked else f"dkimpy verified {verified} of {checked}"),
            row("send: peak RSS, largest sending process", figures["child_mb"], "MB"),
            row("send: peak RSS, parent (flow) process", figures["parent_mb"], "MB"),
        ]
        if MEMORY_N:
            memory = campaign(f"memory-{MEMORY_N}")
            plan_chunks(home, memory, MEMORY_N, chunk_size)
            figures, statuses, problem = send_planned(home, overrides, memory, MEMORY_N)
            peak = figures["parent_mb"] + figures["child_mb"]
            rate = MEMORY_N / figures["seconds"]
            rows += [
                row(f"send: mailflow end to end ({MEMORY_N} msgs, {procs})", rate, "msgs/s", "smtp-source",
                    rate / base, problem),
                row(f"send: peak RSS parent + largest child, {MEMORY_N} recipients (target < 1 GB)", peak, "MB",
                    f"{MEMORY_TARGET_MB:.0f} MB", peak / MEMORY_TARGET_MB, problem),
            ]
    finally:
        stop(sink)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)
    return rows


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    return resource.getrusage(who).ru_maxrss / 1024  # KB on Linux


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
