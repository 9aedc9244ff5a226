"""Run every benchmark module, print one table of figures and ratios, write bench/out/results.json."""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path

from bench import MissingTool

# Each module has `run() -> list[dict]` returning rows made with `bench.row`; add new ones here.
BENCHMARKS = ["bench.send_bench", "bench.shaping_bench", "bench.cpu_bench", "bench.ingest_bench", "bench.plan_bench", "bench.track_bench",
              "bench.track_index_bench",
              "bench.bounce_bench", "bench.imap_bench", "bench.maildir_bench", "bench.aggregate_bench",
              "bench.marts_bench", "bench.scaleout_bench", "bench.commands_bench", "bench.studio_bench"]
OUT = Path(__file__).resolve().parent / "out" / "results.json"
COLUMNS = ("benchmark", "figure", "unit", "baseline", "ratio")


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}" if abs(value) >= 100 else f"{value:.2f}" if abs(value) >= 0.1 else f"{value:.3f}"
    return str(value)


def table(rows: list[dict]) -> str:
    cells = [COLUMNS] + [tuple(fmt(r[c]) for c in COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    right = {1, 4}  # numbers
    lines = [" | ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths)))
             for line in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def main(only: list[str]) -> int:
    """Every benchmark, or those named (`python -m bench bounce imap`, `make bench BENCH="bounce imap"`)."""
    chosen = [n for n in BENCHMARKS if not only or n.removeprefix("bench.").removesuffix("_bench") in only]
    unknown = set(only) - {n.removeprefix("bench.").removesuffix("_bench") for n in BENCHMARKS}
    if unknown:
        print(f"bench: no benchmark {', '.join(sorted(unknown))} (there are: "
              f"{', '.join(n.removeprefix('bench.').removesuffix('_bench') for n in BENCHMARKS)})", file=sys.stderr)
        return 2
    rows: list[dict] = []
    for name in chosen:
        try:
            rows += importlib.import_module(name).run()
        except MissingTool as exc:
            print(f"bench: {exc}", file=sys.stderr)
            return 2
        except Exception:
            traceback.print_exc()
            print(f"bench: {name} failed; no results written", file=sys.stderr)
            return 1
    print(table(rows))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    if not only:  # a partial run never overwrites the whole run's results
        OUT.write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {OUT}" if not only else "\n(a partial run: results not written)")
    for r in rows:  # e.g. a scenario the code under test honours only in part
        if r.get("note"):
            print(f"NOTE: {r['benchmark']}: {r['note']}")
    problems = sorted({r["problem"] for r in rows if r.get("problem")})
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # A hung send leaves worker threads behind; do not wait for them at exit.
    os._exit(code)
