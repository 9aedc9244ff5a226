"""Holdout lift: how much more of the mailed group engaged than of the holdout, which was mailed nothing."""

from __future__ import annotations

from mailflow.tasks.ab.stats import Arm, difference_interval, two_proportion_z, wilson_interval

MEASURES = ("share of recipients with any human open or click of ANY campaign's mail between the test's first "
            "delivery and the decision: everyone assigned to a test variant (mailed, bounced or not) against the "
            "holdout; the difference is the engaged reach this campaign added over what the same people did anyway. "
            "It is not a conversion or revenue effect: mailflow records none.")


def holdout_lift(mailed: Arm, holdout: Arm, confidence: float, window: tuple[str | None, str]) -> dict | None:
    """The lift in percentage points with Newcombe's interval and a pooled z-test; None without a holdout."""
    if holdout.trials == 0:
        return None
    diff, low, high = difference_interval(mailed, holdout, confidence)
    _, p_value = two_proportion_z(mailed, holdout)
    return {
        "lift": diff, "ci_low": low, "ci_high": high, "p_value": p_value, "confidence": confidence,
        "mailed": group(mailed, confidence), "holdout": group(holdout, confidence),
        "window_start": window[0], "window_end": window[1], "measures": MEASURES,
    }


def group(arm: Arm, confidence: float) -> dict:
    low, high = wilson_interval(arm.successes, arm.trials, confidence)
    return {"recipients": arm.trials, "engaged": arm.successes, "rate": arm.rate, "ci_low": low, "ci_high": high}


def lift_line(h: dict) -> str:
    """The lift in words, as `mailflow ab decide` and the report print it."""
    mailed, holdout = h["mailed"], h["holdout"]
    return (f"holdout lift: {h['lift'] * 100:+.1f} points [{h['ci_low'] * 100:+.1f}, {h['ci_high'] * 100:+.1f}] "
            f"(engaged with any mail: mailed {mailed['rate']:.1%} of {mailed['recipients']}, "
            f"holdout {holdout['rate']:.1%} of {holdout['recipients']}; p = {h['p_value']:.3g})")
