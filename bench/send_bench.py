"""Send benchmark: mailflow's send_chunk against Postfix's smtp-sink, vs smtp-source's rate to the same sink."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import polars as pl

from bench import MissingTool, row
from bench.gen_subscribers import rows as subscriber_rows

CONNECTIONS = 8       # the default pool's connections (mailflow/settings.py)
CHUNK_WORKERS = 4     # flows/send_campaign.py: ThreadPoolTaskRunner(max_workers=4)
BASELINE_RUNS = 3     # smtp-source is quick: take the median of a few runs
SIZE_SAMPLE = 200     # recipients rendered to measure the message size
TIMEOUT = float(os.environ.get("BENCH_SEND_TIMEOUT", "900"))


def postfix_tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if not path:
        raise MissingTool(f"{name} not found: `apt-get install postfix` (it ships smtp-sink and smtp-source)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_sink(port: int) -> subprocess.Popen:
    """smtp-sink on 127.0.0.1:port, once it answers with its 220 greeting."""
    cmd = [postfix_tool("smtp-sink")]
    if os.geteuid() == 0:
        cmd += ["-u", getpass.getuser()]  # required when run as root
    cmd += [f"127.0.0.1:{port}", "1000"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"smtp-sink exited {proc.returncode}: {proc.stderr.read().decode().strip()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                if s.recv(64).startswith(b"220"):
                    return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"smtp-sink did not answer on 127.0.0.1:{port}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def source_rate(port: int, n: int, size: int, sender: str, helo: str) -> float:
    """msgs/s of smtp-source: n messages of `size` bytes over CONNECTIONS persistent sessions (-d)."""
    cmd = [postfix_tool("smtp-source"), "-d", "-s", str(CONNECTIONS), "-m", str(n), "-l", str(size),
           "-f", sender, "-t", "bench@example.com", "-M", helo, f"127.0.0.1:{port}"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, timeout=600)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"smtp-source exited {done.returncode}: {done.stderr.decode().strip()}")
    return n / elapsed


def recipients(n: int, chunk_size: int) -> pl.DataFrame:
    """n recipients shaped like the planner's chunk_rows query (sql/queries/plan.sql)."""
    data = [
        {
            "chunk_id": i // chunk_size, "subscriber_id": i + 1, "variant": "A", "email": r["email"],
            "first_name": r["first_name"], "last_name": r["last_name"],
            "attributes": json.dumps({k: r[k] for k in ("country", "plan", "signup_date")}),
        }
        for i, r in enumerate(subscriber_rows(n, bad_fraction=0.0, reject_fraction=0.0))
    ]
    return pl.DataFrame(data).with_columns(pl.col("chunk_id").cast(pl.Int32), pl.col("subscriber_id").cast(pl.Int64))


def write_chunks(frame: pl.DataFrame, chunk_dir: Path) -> list[Path]:
    chunk_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for (chunk_id,), part in frame.group_by("chunk_id", maintain_order=True):
        path = chunk_dir / f"chunk-{chunk_id:05d}.parquet"
        part.write_parquet(path)
        paths.append(path)
    return paths


def read_ledger(ledger_dir: Path) -> tuple[int, set[int], Counter]:
    records, ids, statuses = 0, set(), Counter()
    for path in sorted(ledger_dir.glob("*.ndjson")):
        for line in path.read_bytes().splitlines():
            record = json.loads(line)
            records += 1
            ids.add(record["subscriber_id"])
            statuses[record["status"]] += 1
    return records, ids, statuses


def run() -> list[dict]:
    postfix_tool("smtp-sink"), postfix_tool("smtp-source")
    from mailflow import SAMPLES_DIR, prefect_env
    prefect_env.prepare()
    from mailflow.settings import load_settings
    from tasks.campaign import load_campaign
    from tasks.message import Envelope, envelope_sender
    from tasks.send import composer_for, send_chunk

    n = int(os.environ.get("BENCH_SEND_N", "20000"))
    spec = load_campaign(SAMPLES_DIR / "campaign.yaml")
    home = Path(tempfile.mkdtemp(prefix="mailflow-bench-send-"))
    port = free_port()
    sink = start_sink(port)
    pool = ThreadPoolExecutor(max_workers=CHUNK_WORKERS, thread_name_prefix="send-chunk")
    try:
        settings = load_settings(overrides={
            "home": str(home),
            "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"], "connections": CONNECTIONS}}},
            "tracking": {"secret": "bench-secret", "base_url": "https://t.example.com"},
        })
        frame = recipients(n, settings.send.chunk_size)
        composer = composer_for(settings, spec)
        sample = [composer.compose(r) for r in frame.head(SIZE_SAMPLE).iter_rows(named=True)]
        size = round(statistics.mean(len(e.data) for e in sample if isinstance(e, Envelope)))
        chunks = write_chunks(frame, home / "campaigns" / spec.campaign_id / "chunks")
        del frame, sample

        log(f"send: smtp-source, {n} messages of {size} B over {CONNECTIONS} sessions, {BASELINE_RUNS} runs")
        base = statistics.median(
            source_rate(port, n, size, envelope_sender(spec.from_addr), settings.smtp.helo)
            for _ in range(BASELINE_RUNS)
        )
        rss_before = peak_rss_mb()
        log(f"send: mailflow, {n} recipients in {len(chunks)} chunks, {CHUNK_WORKERS} chunk threads")
        start = time.perf_counter()
        futures = [pool.submit(lambda c: asyncio.run(send_chunk(settings, spec, c)), c) for c in chunks]
        finished, pending = wait(futures, timeout=TIMEOUT)
        elapsed = time.perf_counter() - start
        if pending:
            raise TimeoutError(f"mailflow send did not finish in {TIMEOUT:.0f}s ({len(pending)} chunks pending)")
        counts = sum((Counter(f.result()) for f in futures), Counter())
        rss_peak = peak_rss_mb()
        records, ids, statuses = read_ledger(home / "ledger" / spec.campaign_id)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        stop(sink)
        if not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(home, ignore_errors=True)

    rate = n / elapsed
    problem = None
    if records != n or len(ids) != n or statuses["delivered"] != n:
        problem = (f"ledger has {records} records for {len(ids)} subscribers of {n}; "
                   f"statuses {dict(statuses)}; send_chunk counts {dict(counts)}")
    return [
        row("send: message size (rendered demo, mean)", size, "bytes"),
        row("send: smtp-source -> smtp-sink (transport limit)", base, "msgs/s", "-", 1.0),
        row(f"send: mailflow thin loop (render+MIME+SMTP, {CONNECTIONS} conns)", rate, "msgs/s",
            "smtp-source", rate / base, problem),
        row("send: mailflow ledger delivered", statuses["delivered"], f"of {n}", "-", statuses["delivered"] / n,
            problem),
        row("send: peak RSS before the send (imports, data)", rss_before, "MB"),
        row("send: peak RSS", rss_peak, "MB"),
    ]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
