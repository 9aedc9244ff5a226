"""A/B statistics against published and hand-computed values, and the verdict they lead to."""

import math

import pytest

from mailflow.tasks.ab.decide import FALLBACK_CONTROL, FALLBACK_LEADER, TOO_FEW, WAIT, WINNER, VariantCounts, decide
from mailflow.tasks.ab.stats import (
    Arm,
    compare_leader,
    difference_interval,
    holm,
    probability_best,
    two_proportion_z,
    wilson_interval,
    z_quantile,
)
from mailflow.tasks.plan.campaign_parts import AbTest


def test_wilson_interval_matches_newcombes_published_examples():
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion", Table I, method 3
    assert wilson_interval(81, 263) == pytest.approx((0.2553, 0.3662), abs=5e-5)
    assert wilson_interval(15, 148) == pytest.approx((0.0624, 0.1605), abs=5e-5)
    assert wilson_interval(0, 20) == pytest.approx((0.0, 0.1611), abs=5e-5)
    assert wilson_interval(1, 29) == pytest.approx((0.0061, 0.1718), abs=5e-5)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_newcombes_difference_interval_matches_his_published_examples():
    # Newcombe (1998), "Interval estimation for the difference between independent proportions", method 10
    assert difference_interval(Arm("a", 70, 56), Arm("b", 80, 48))[1:] == pytest.approx((0.0524, 0.3339), abs=5e-5)
    assert difference_interval(Arm("a", 10, 9), Arm("b", 10, 3))[1:] == pytest.approx((0.1705, 0.8090), abs=5e-5)


def test_pooled_two_proportion_z_by_hand():
    # 120/1000 against 90/1000: pooled 0.105, SE sqrt(0.105 * 0.895 * 2/1000) = 0.0137091
    z, p = two_proportion_z(Arm("a", 1000, 120), Arm("b", 1000, 90))
    assert z == pytest.approx(0.03 / math.sqrt(0.105 * 0.895 * 0.002), rel=1e-12) == pytest.approx(2.18827, abs=1e-5)
    assert p == pytest.approx(0.028650, abs=1e-6)
    assert two_proportion_z(Arm("a", 100, 0), Arm("b", 100, 0)) == (0.0, 1.0), "no variation is no evidence"
    assert two_proportion_z(Arm("a", 0, 0), Arm("b", 100, 3)) == (0.0, 1.0)
    assert z_quantile(0.95) == pytest.approx(1.959964, abs=1e-6)


def test_holm_adjusts_step_down_and_keeps_order():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.4]) == [0.8, 0.8], "capped at 1, then monotone"


def exact_probability_b_beats_a(a: Arm, b: Arm) -> float:
    """Evan Miller's closed form of P(p_B > p_A) for Beta(1 + x, 1 + n - x) posteriors."""
    a_a, b_a, a_b, b_b = 1 + a.successes, 1 + a.trials - a.successes, 1 + b.successes, 1 + b.trials - b.successes

    def log_beta(x, y):
        return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)

    return sum(math.exp(log_beta(a_a + i, b_b + b_a) - math.log(b_b + i) - log_beta(1 + i, b_b) - log_beta(a_a, b_a))
               for i in range(a_b))


def test_probability_best_agrees_with_the_exact_integral_and_is_deterministic():
    arms = [Arm("A", 1000, 90), Arm("B", 1000, 120)]
    found = probability_best(arms)
    assert found["B"] == pytest.approx(exact_probability_b_beats_a(*arms), abs=0.004)
    assert found["A"] + found["B"] == pytest.approx(1.0)
    assert probability_best(arms) == found, "a fixed seed: the same counts give the same figures"
    equal = probability_best([Arm("A", 500, 50), Arm("B", 500, 50), Arm("C", 500, 50)])
    assert all(abs(p - 1 / 3) < 0.01 for p in equal.values())


def test_the_leader_is_compared_with_each_other_variant_and_a_tie_goes_to_the_control():
    leader, comparisons = compare_leader([Arm("A", 1000, 50), Arm("B", 1000, 80), Arm("C", 1000, 70)])
    assert leader.name == "B" and [c.other for c in comparisons] == ["A", "C"]
    assert [c.p_adjusted for c in comparisons] == pytest.approx(holm([c.p_value for c in comparisons]))
    assert compare_leader([Arm("A", 100, 5), Arm("B", 100, 5)])[0].name == "A"


RULE = AbTest(test_fraction=0.5, metric="unique_clicks", min_per_variant=500, confidence=0.95, fallback="leader")


def counts(*rows):
    return [VariantCounts(name, delivered, clickers=clicked, openers=opened, clicking_openers=both)
            for name, delivered, clicked, opened, both in rows]


def test_a_known_winner_wins_with_its_statistics():
    verdict = decide(RULE, counts(("A", 1000, 61, 300, 50), ("B", 1000, 121, 310, 100)))
    assert (verdict.outcome, verdict.winner, verdict.final) == (WINNER, "B", True)
    assert verdict.p_value == pytest.approx(two_proportion_z(Arm("B", 1000, 121), Arm("A", 1000, 61))[1])
    assert verdict.p_value < 0.001 and verdict.probability_best["B"] > 0.99
    rows = {v["variant"]: v for v in verdict.variants}
    assert (rows["B"]["successes"], rows["B"]["trials"], rows["B"]["rate"]) == (121, 1000, 0.121)
    assert (rows["B"]["ci_low"], rows["B"]["ci_high"]) == pytest.approx(wilson_interval(121, 1000))
    assert "B wins" in verdict.reason and "significant" in verdict.reason


@pytest.mark.parametrize("fallback, outcome, winner", [
    ("leader", FALLBACK_LEADER, "B"), ("control", FALLBACK_CONTROL, "A"), ("wait", WAIT, None)])
def test_a_tie_follows_the_configured_fallback(fallback, outcome, winner):
    rule = AbTest(min_per_variant=500, fallback=fallback)
    verdict = decide(rule, counts(("A", 1000, 100, 300, 90), ("B", 1000, 104, 300, 95)))
    assert (verdict.outcome, verdict.winner, verdict.leader) == (outcome, winner, "B")
    assert verdict.p_value > 0.05 and verdict.final == (fallback != "wait")
    assert "not significant" in verdict.reason and f"the fallback is {'to wait' if fallback == 'wait' else 'the'}" in verdict.reason


def test_too_few_delivered_is_no_verdict_however_large_the_lead():
    few = counts(("A", 499, 5, 100, 5), ("B", 600, 300, 400, 300))
    verdict = decide(AbTest(min_per_variant=500, fallback="wait"), few)
    assert (verdict.outcome, verdict.winner, verdict.p_value, verdict.final) == (TOO_FEW, None, None, False)
    assert "too few delivered for a verdict (A 499; the test needs 500 per variant)" in verdict.reason
    assert decide(AbTest(min_per_variant=500, fallback="control"), few).outcome == FALLBACK_CONTROL


def test_click_to_open_is_clickers_among_openers_over_openers():
    rule = AbTest(metric="click_to_open", min_per_variant=100)
    verdict = decide(rule, counts(("A", 1000, 90, 400, 80), ("B", 1000, 150, 300, 140)))
    rows = {v["variant"]: (v["successes"], v["trials"]) for v in verdict.variants}
    assert rows == {"A": (80, 400), "B": (140, 300)} and verdict.winner == "B"


def test_three_variants_need_the_leader_ahead_of_each_after_holm():
    # B is clearly ahead of A but not of C: no winner, though the raw B-vs-A p-value is tiny
    verdict = decide(AbTest(min_per_variant=500, fallback="wait"),
                     counts(("A", 1000, 60, 0, 0), ("B", 1000, 110, 0, 0), ("C", 1000, 100, 0, 0)))
    assert verdict.outcome == WAIT and verdict.leader == "B"
    assert [c["other"] for c in verdict.comparisons] == ["A", "C"] and verdict.comparisons[0]["p_adjusted"] < 0.01
    assert verdict.p_value == verdict.comparisons[1]["p_adjusted"] > 0.05
