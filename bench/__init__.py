"""Benchmarks: `make bench` runs them and prints figures as ratios to same-run baselines."""


class MissingTool(RuntimeError):
    """A program a benchmark needs is not installed; the message says how to install it."""


def row(benchmark: str, figure: float, unit: str, baseline: str = "-", ratio: float | None = None,
        problem: str | None = None) -> dict:
    """One table row; a `problem` marks a run whose figures should not be trusted."""
    out = {"benchmark": benchmark, "figure": figure, "unit": unit, "baseline": baseline, "ratio": ratio}
    if problem:
        out["problem"] = problem
    return out
