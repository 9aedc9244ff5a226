"""Maildir intake: `bounces fetch` over a local Maildir of 10,000 DSNs (classify, map, record, fsync per batch, move),
as a ratio to the bare I/O of reading and moving the same files, measured in the same run."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from bench import label, log, row
from bench.imap_bench import bounce
from mailflow.tasks.bounces.intake import BounceRecorder, message_rows
from mailflow.tasks.bounces.maildir import PROCESSED, fetch_maildir
from mailflow.tasks.bounces.mapping import SendIndex
from mailflow.tasks.compose.tokens import TokenSigner

N = int(os.environ.get("BENCH_MAILDIR_N", "10000"))


def fill(box: Path) -> None:
    for sub in ("new", "cur", "tmp"):
        (box / sub).mkdir(parents=True, exist_ok=True)
    for n in range(N):
        (box / "new" / f"{n:08d}.bench.host").write_bytes(bounce(n))


def bare(box: Path) -> float:
    """What any reader must do: read each file and rename it into the processed folder."""
    done = box / PROCESSED / "cur"
    done.mkdir(parents=True)
    start = time.perf_counter()
    for file in sorted((box / "new").iterdir()):
        file.read_bytes()
        os.replace(file, done / (file.name + ":2,S"))
    return time.perf_counter() - start


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="maildir-bench-") as tmp:
        root = Path(tmp)
        log(f"maildir_bench: writing {N} DSNs twice")
        fill(root / "bare")
        fill(root / "box")
        baseline = bare(root / "bare")
        shutil.rmtree(root / "bare")
        index = SendIndex(root / "home", TokenSigner("bench-secret"))
        start = time.perf_counter()
        with BounceRecorder(root / "home") as recorder:
            report = fetch_maildir(root / "box", lambda raw, source: recorder.record(raw, message_rows(raw, source, index)),
                                   recorder.sync)
        seconds = time.perf_counter() - start
        events = recorder.counts["bounce"]
    problem = None if report.fetched == report.moved == events == N else (
        f"maildir_bench: fetched {report.fetched}, moved {report.moved}, {events} events of {N}")
    log(f"maildir_bench: {N} messages fetched, recorded and moved in {seconds:.1f} s (bare read+move {baseline:.2f} s)")
    return [
        row(f"maildir fetch+record+move {label(N)} (bounces fetch)", N / seconds, "msg/s",
            f"bare read+move {N / baseline:.0f} msg/s", (N / seconds) / (N / baseline), problem=problem),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
