"""Tally benchmark: what one poll of tasks/files/tally.py costs on a 1,000,000-recipient ledger.

Writes BENCH_TALLY_N recipients (default 1,000,000) in chunk files of 1,000, each with an
`in_flight` mark and an outcome as tasks/files/ledger.py writes them, five chunks still half
written, then times: the first poll (everything), an idle poll, and the poll after the five
chunks append 5,000 more records. `python -m bench.tally_bench` prints the rows.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from bench import row
from mailflow.tasks.files.ledger import LedgerRecord
from mailflow.tasks.files.tally import LedgerTally

N = int(os.environ.get("BENCH_TALLY_N", "1000000"))
PER_CHUNK = 1000
OPEN_CHUNKS = 5
PROVIDERS = ("gmail", "microsoft", "yahoo", "other")


def chunk_lines(chunk_id: int) -> list[bytes]:
    lines, seq = [], 0
    for i in range(PER_CHUNK):
        sid = chunk_id * PER_CHUNK + i + 1
        outcome = "bounced" if sid % 50 == 0 else "deferred" if sid % 97 == 0 else "delivered"
        for status in ("in_flight", outcome):
            seq += 1
            record = LedgerRecord("bench", sid, "AB"[sid % 2], chunk_id, status, 250, "2.0.0",
                                  "250 2.0.0 Ok: queued as 4XbT9k1Qz", 1, provider=PROVIDERS[sid % 4])
            row_ = record.__dict__ | {"logged_at": "2026-11-28T04:46:11.123456+00:00", "seq": seq}
            lines.append(json.dumps(row_, separators=(",", ":")).encode() + b"\n")
    return lines


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run() -> list[dict]:
    chunks = N // PER_CHUNK
    with tempfile.TemporaryDirectory(prefix="tally-bench-") as tmp:
        directory = Path(tmp)
        rest: dict[Path, list[bytes]] = {}
        size = 0
        for chunk_id in range(chunks):
            lines = chunk_lines(chunk_id)
            path = directory / f"chunk-{chunk_id:05d}.ndjson"
            cut = len(lines) // 2 if chunk_id >= chunks - OPEN_CHUNKS else len(lines)
            path.write_bytes(b"".join(lines[:cut]))
            rest[path] = lines[cut:]
            size += sum(map(len, lines))
        tally = LedgerTally(directory)
        before = rss_bytes()
        first = timed(tally.poll)
        state = rss_bytes() - before
        idle = statistics.median(timed(tally.poll) for _ in range(20))
        appended = 0
        for path, lines in rest.items():
            with path.open("ab") as fh:
                fh.write(b"".join(lines))
            appended += len(lines)
        step = timed(tally.poll)
        assert tally.poll().done == chunks * PER_CHUNK
    return [
        row(f"tally first poll, {N:,} recipients ({size / 1e6:.0f} MB)", first, "s"),
        row(f"tally state at {N:,} recipients", state / 1e6, "MB"),
        row(f"tally idle poll, {chunks:,} files", idle * 1000, "ms"),
        row(f"tally poll after {appended:,} new records", step * 1000, "ms"),
    ]


if __name__ == "__main__":
    for r in run():
        print(f"{r['benchmark']}: {r['figure']:.2f} {r['unit']}")
