"""Recipient index benchmark: build and lookup of the tracking service's subscriber id -> chunk index.

The chunks are written as planning writes them (ids dealt out across BENCH_TRACK_INDEX_CHUNKS parquet
files); the baseline, in the same run on the same files, is the naive index: a Python dict read from
the same columns. Build is one pass over the chunks; a lookup is the mean over BENCH_TRACK_INDEX_LOOKUPS
ids spread over the range, half of them absent.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import polars as pl

from bench import label, log, row
from mailflow.tasks.track.campaigns import RecipientIndex

RECIPIENTS = int(os.environ.get("BENCH_TRACK_INDEX_RECIPIENTS", "1000000"))
CHUNKS = int(os.environ.get("BENCH_TRACK_INDEX_CHUNKS", "1000"))
LOOKUPS = int(os.environ.get("BENCH_TRACK_INDEX_LOOKUPS", "2000"))


def run() -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="mailflow-bench-track-index-"))
    try:
        return measure(work, RECIPIENTS, CHUNKS, LOOKUPS)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, recipients: int, chunks: int, lookups: int) -> list[dict]:
    log(f"track_index: writing {recipients} ids in {chunks} chunks")
    paths = tuple(work / f"chunk-{c:05d}.parquet" for c in range(chunks))
    for c, path in enumerate(paths):
        pl.DataFrame({"subscriber_id": pl.int_range(c, recipients, chunks, eager=True)}).write_parquet(path)
    probes = [i * (2 * recipients // lookups) for i in range(lookups)]  # the upper half beyond every id

    built, index = timed(lambda: RecipientIndex.build(paths))
    naive_built, naive = timed(lambda: naive_index(paths))
    looked, found = timed(lambda: [index.chunk_of(sid) for sid in probes])
    naive_looked, naive_found = timed(lambda: [paths[f] if (f := naive.get(sid)) is not None else None for sid in probes])
    problem = None if found == naive_found else "track_index: the index and the dict disagree on a lookup"
    size = (index.ids.estimated_size() + index.files.estimated_size()) / recipients
    what = f"{label(recipients)} recipients in {chunks} chunks"
    return [row(f"track_index: build ({what})", built, "s", "dict from the same columns", built / naive_built, problem),
            row(f"track_index: lookup, mean of {lookups} ({what})", looked / lookups * 1e6, "µs", "dict lookup",
                looked / naive_looked, problem),
            row(f"track_index: index size ({what})", size, "bytes/recipient")]


def naive_index(paths: tuple[Path, ...]) -> dict[int, int]:
    out: dict[int, int] = {}
    for i, path in enumerate(paths):
        out.update(dict.fromkeys(pl.read_parquet(path, columns=["subscriber_id"])["subscriber_id"].to_list(), i))
    return out


def timed(work):
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


if __name__ == "__main__":
    from bench.__main__ import table

    print(table(run()))
