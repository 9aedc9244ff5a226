"""Benchmarks: `make bench` runs them and prints figures as ratios to same-run baselines."""

import sys


class MissingTool(RuntimeError):
    """A program a benchmark needs is not installed; the message says how to install it."""


def row(benchmark: str, figure: float, unit: str, baseline: str = "-", ratio: float | None = None,
        problem: str | None = None, note: str | None = None) -> dict:
    """One table row; a `problem` marks a run whose figures should not be trusted, a `note` says what
    they stand for (e.g. "partial: ..." when the code measured does only part of the scenario)."""
    out = {"benchmark": benchmark, "figure": figure, "unit": unit, "baseline": baseline, "ratio": ratio}
    if problem:
        out["problem"] = problem
    if note:
        out["note"] = note
    return out


def label(n: int) -> str:
    """A row count as rows are named in benchmark labels: 20k, 1M, 10M."""
    for size, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= size:
            return f"{n / size:g}{suffix}"
    return str(n)


def log(message: str) -> None:
    """Progress for the person watching: stderr, so the table on stdout stays whole."""
    print(message, file=sys.stderr, flush=True)
