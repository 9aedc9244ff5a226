"""A/B statistics: two-proportion z-tests with Holm's correction, Wilson intervals, Bayesian probability to be best."""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

_NORMAL = NormalDist()
DRAWS = 200_000  # posterior draws per variant: P(best) to about +-0.002 (its standard error at 0.5 is 0.0011)
SEED = 13  # fixed: the same counts give the same probabilities in every run


@dataclass(frozen=True)
class Arm:
    """One variant's sample: `successes` of `trials` (e.g. unique clickers of delivered recipients)."""

    name: str
    trials: int
    successes: int

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0


@dataclass(frozen=True)
class Comparison:
    """The leader against one other variant: pooled two-proportion z and its two-sided p-value,
    raw and Holm-adjusted for the number of comparisons made."""

    other: str
    z: float
    p_value: float
    p_adjusted: float


def z_quantile(confidence: float) -> float:
    """The two-sided critical value: 1.959964 for 0.95."""
    return _NORMAL.inv_cdf(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for a proportion: sound near 0 and 1 and for small samples, where the
    textbook p +- z*sqrt(pq/n) collapses to a point. (0, 1) without trials."""
    if trials == 0:
        return 0.0, 1.0
    z = z_quantile(confidence)
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def two_proportion_z(a: Arm, b: Arm) -> tuple[float, float]:
    """(z, two-sided p) of H0 rate_a == rate_b with the pooled standard error; (0, 1) when the pooled
    rate is 0 or 1 (no variation: no evidence of a difference)."""
    if not a.trials or not b.trials:
        return 0.0, 1.0
    pooled = (a.successes + b.successes) / (a.trials + b.trials)
    se = math.sqrt(pooled * (1 - pooled) * (1 / a.trials + 1 / b.trials))
    if se == 0:
        return 0.0, 1.0
    z = (a.rate - b.rate) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjustment, in the given order: controls the family-wise error rate of k
    comparisons at alpha without assuming independence, and rejects at least what Bonferroni does."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [0.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def leader_of(arms: list[Arm]) -> Arm:
    """The highest rate; a tie goes to the earlier variant (the control first)."""
    return max(arms, key=lambda a: a.rate) if arms else Arm("", 0, 0)  # max keeps the first of equals


def compare_leader(arms: list[Arm]) -> tuple[Arm, list[Comparison]]:
    """The leader and its comparison with every other variant (Holm-adjusted over len(arms) - 1 tests)."""
    leader = leader_of(arms)
    others = [a for a in arms if a.name != leader.name]
    raw = [two_proportion_z(leader, other) for other in others]
    adjusted = holm([p for _, p in raw])
    return leader, [Comparison(o.name, z, p, padj) for o, (z, p), padj in zip(others, raw, adjusted, strict=True)]


def probability_best(arms: list[Arm], draws: int = DRAWS, seed: int = SEED) -> dict[str, float]:
    """P(each variant's true rate is the highest) under independent Beta(1 + x, 1 + n - x) posteriors
    (uniform priors), by Monte Carlo with a fixed seed: deterministic, and exact enough to report."""
    if not arms:
        return {}
    rng = np.random.default_rng(seed)
    samples = np.stack([rng.beta(1 + a.successes, 1 + a.trials - a.successes, draws) for a in arms])
    wins = np.bincount(samples.argmax(axis=0), minlength=len(arms))
    return {a.name: round(float(w) / draws, 4) for a, w in zip(arms, wins, strict=True)}


def difference_interval(a: Arm, b: Arm, confidence: float = 0.95) -> tuple[float, float, float]:
    """(rate_a - rate_b, low, high): Newcombe's hybrid score interval (his method 10), built from both
    Wilson intervals, so it stays sound at rates near 0, where a holdout's often are."""
    diff = a.rate - b.rate
    la, ua = wilson_interval(a.successes, a.trials, confidence)
    lb, ub = wilson_interval(b.successes, b.trials, confidence)
    low = diff - math.sqrt((a.rate - la) ** 2 + (ub - b.rate) ** 2)
    high = diff + math.sqrt((ua - a.rate) ** 2 + (b.rate - lb) ** 2)
    return diff, low, high
