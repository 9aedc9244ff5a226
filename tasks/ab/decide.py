"""The A/B verdict: from each variant's counts and the campaign's `ab:` rule to a winner, a fallback or a wait."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailflow.tasks.ab.stats import Arm, compare_leader, probability_best, wilson_interval
from mailflow.tasks.plan.campaign_parts import AbTest

WINNER, FALLBACK_LEADER, FALLBACK_CONTROL, WAIT, TOO_FEW = (
    "winner", "fallback_leader", "fallback_control", "wait", "too_few")
FINAL_OUTCOMES = (WINNER, FALLBACK_LEADER, FALLBACK_CONTROL)  # the remainder goes out; the decision stands
METHOD = "two_proportion_z_pooled_holm"  # the test decides; probability_best is reported beside it


@dataclass(frozen=True)
class VariantCounts:
    """One test variant's human engagement among its delivered recipients (distinct subscribers)."""

    variant: str
    delivered: int
    openers: int = 0
    clickers: int = 0
    clicking_openers: int = 0  # clicked and opened: click_to_open's numerator, so it is a proportion

    def arm(self, metric: str) -> Arm:
        """The metric as successes of trials: unique opens or clicks over delivered; click-to-open as
        clickers among openers over openers."""
        if metric == "unique_opens":
            return Arm(self.variant, self.delivered, self.openers)
        if metric == "click_to_open":
            return Arm(self.variant, self.openers, self.clicking_openers)
        return Arm(self.variant, self.delivered, self.clickers)


@dataclass(frozen=True)
class Verdict:
    outcome: str
    winner: str | None  # the variant the remainder gets; None while waiting
    leader: str
    p_value: float | None  # the leader's weakest comparison, Holm-adjusted; None below the minimum sample
    probability_best: dict[str, float]
    variants: list[dict]  # per variant: delivered, trials, successes, rate, ci_low, ci_high
    reason: str
    comparisons: list[dict] = field(default_factory=list)

    @property
    def final(self) -> bool:
        return self.outcome in FINAL_OUTCOMES


def percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def decide(rule: AbTest, counts: list[VariantCounts]) -> Verdict:
    """Compare the variants (in the campaign's order, the first being the control) on rule.metric.

    A winner needs every variant at `min_per_variant` delivered and the leader ahead of each other
    variant by a pooled two-proportion z-test whose Holm-adjusted p-value is below 1 - confidence.
    Otherwise the fallback: the leader, the control, or wait (nothing sent; tried again later).
    """
    arms = [c.arm(rule.metric) for c in counts]
    table = [variant_row(c, a, rule.confidence) for c, a in zip(counts, arms, strict=True)]
    best = probability_best(arms)
    leader, comparisons = compare_leader(arms)
    control = counts[0].variant
    lead = f"{leader.name} leads on {rule.metric} ({percent(leader.rate)}" + "".join(
        f", {a.name} {percent(a.rate)}" for a in arms if a.name != leader.name) + ")"
    short = [c for c in counts if c.delivered < rule.min_per_variant]
    if short:
        few = ", ".join(f"{c.variant} {c.delivered}" for c in short)
        why = f"too few delivered for a verdict ({few}; the test needs {rule.min_per_variant} per variant)"
        return _fallback(rule, leader.name, control, None, best, table, f"{lead}, but {why}", [], TOO_FEW)
    p_value = max((c.p_adjusted for c in comparisons), default=1.0)
    rows = [{"other": c.other, "z": round(c.z, 4), "p_value": c.p_value, "p_adjusted": c.p_adjusted} for c in comparisons]
    tests = f"{len(comparisons)} comparison{'s' if len(comparisons) != 1 else ''}"
    significant = f"at {rule.confidence:g} confidence (p = {p_value:.4g}, Holm-adjusted over {tests})"
    if p_value < 1 - rule.confidence:
        return Verdict(WINNER, leader.name, leader.name, p_value, best, table,
                       f"{lead}; the lead is significant {significant}, so {leader.name} wins", rows)
    return _fallback(rule, leader.name, control, p_value, best, table, f"{lead}, not significant {significant}",
                     rows, WAIT)


def _fallback(rule: AbTest, leader: str, control: str, p_value: float | None, best: dict[str, float],
              table: list[dict], said: str, rows: list[dict], waiting: str) -> Verdict:
    """No clear winner: the configured fallback, said in the reason."""
    if rule.fallback == "leader":
        return Verdict(FALLBACK_LEADER, leader, leader, p_value, best, table,
                       f"{said}; the fallback is the leader, so {leader} gets the remainder", rows)
    if rule.fallback == "control":
        return Verdict(FALLBACK_CONTROL, control, leader, p_value, best, table,
                       f"{said}; the fallback is the control, so {control} gets the remainder", rows)
    return Verdict(waiting, None, leader, p_value, best, table, f"{said}; the fallback is to wait: nothing is sent yet",
                   rows)


def variant_row(counts: VariantCounts, arm: Arm, confidence: float) -> dict:
    """What ab_decisions.variants keeps per variant (and the report draws its intervals from)."""
    low, high = wilson_interval(arm.successes, arm.trials, confidence)
    return {"variant": counts.variant, "delivered": counts.delivered, "trials": arm.trials, "successes": arm.successes,
            "rate": arm.rate, "ci_low": low, "ci_high": high}
