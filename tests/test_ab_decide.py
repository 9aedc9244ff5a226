"""A/B decisions on synthetic warehouse data: a known winner, a tie, too few; what is stored and when a campaign is due."""

from datetime import UTC, datetime, timedelta

import pytest

from mailflow.errors import MailflowError
from mailflow.tasks.ab.attempt import attempt, due_for_decision, release
from mailflow.tasks.ab.record import decision_status, decisions_of, mark_remainder_sent
from mailflow.tasks.ab.stats import Arm, difference_interval
from mailflow.tasks.files.manifest import chunk_entries, read_manifest
from tests.support.abtest import ab_campaign, deliver, engage, group, sent_ab_test

AB = "{test_fraction: 0.6, holdout_fraction: 0.1, metric: unique_clicks, min_per_variant: 500, wait: 2h, fallback: %s}"
NOW = datetime(2030, 1, 1, tzinfo=UTC)  # after any real time a test records a move at


def sent_test(con, home, tmp_path, fallback="leader", clicks=(0.05, 0.12), **kw):
    return sent_ab_test(con, home, tmp_path, AB % fallback, clicks, **kw)


def test_a_known_winner_is_stored_once_with_its_inputs_and_the_decision_stands(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path)
    a_ids = group(con, spec.campaign_id, "A")
    engage(con, spec.campaign_id, a_ids[-400:], machine=True)  # a link scanner: would make A lead if counted
    remainder = group(con, spec.campaign_id, "remainder")
    deliver(con, spec.campaign_id, "remainder", remainder[:50], as_variant="A")  # the remainder is never test data
    engage(con, spec.campaign_id, remainder[:50])
    decision = attempt(con, home, spec.campaign_id, NOW, "test")
    assert (decision["outcome"], decision["winner"], decision["final"], decision["attempt"]) == ("winner", "B", True, 1)
    assert decision["send_remainder"] and decision["remainder_recipients"] == len(remainder) > 0
    rows = {v["variant"]: v for v in decision["variants"]}
    a, b = len(a_ids), len(group(con, spec.campaign_id, "B"))
    assert (rows["A"]["trials"], rows["A"]["successes"]) == (a, int(a * 0.05))
    assert (rows["B"]["trials"], rows["B"]["successes"]) == (b, int(b * 0.12))
    assert not decision["early"] and decision["next_try_at"] is None
    stored = decisions_of(con, spec.campaign_id)
    assert len(stored) == 1 and stored[0]["final"] and stored[0]["variants"] == decision["variants"]
    assert stored[0]["probability_best"]["B"] > 0.99 and stored[0]["p_value"] == pytest.approx(decision["p_value"])
    assert stored[0]["reason"] == decision["reason"] and "B wins" in stored[0]["reason"]

    again = attempt(con, home, spec.campaign_id, NOW + timedelta(hours=1), "test")
    assert again["already_decided"] and not again["stored"] and again["attempt"] == 1 and again["winner"] == "B"
    assert len(decisions_of(con, spec.campaign_id)) == 1, "deciding again stores nothing"


def test_a_tie_with_fallback_control_gives_the_remainder_to_the_first_variant(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path, "control", clicks=(0.10, 0.105))
    decision = attempt(con, home, spec.campaign_id, NOW, "test")
    assert (decision["outcome"], decision["winner"], decision["leader"], decision["final"]) == (
        "fallback_control", "A", "B", True)
    assert decision["p_value"] > 0.05 and "the fallback is the control, so A gets the remainder" in decision["reason"]


def test_a_tie_with_fallback_wait_sends_nothing_and_is_tried_again_after_another_wait(con, home, tmp_path):
    spec, finished = sent_test(con, home, tmp_path, "wait", clicks=(0.10, 0.105))
    early = attempt(con, home, spec.campaign_id, finished + timedelta(minutes=30), "test")
    assert (early["outcome"], early["winner"], early["final"], early["send_remainder"]) == ("wait", None, False, False)
    assert early["early"] and early["next_try_at"] == finished + timedelta(hours=2), "the wait's end still stands"
    assert "decided early" in early["reason"] and "tries again from" in early["reason"]
    late = attempt(con, home, spec.campaign_id, NOW, "test")
    assert late["attempt"] == 2 and not late["early"] and late["next_try_at"] == NOW + timedelta(hours=2)
    assert [d["outcome"] for d in decisions_of(con, spec.campaign_id)] == ["wait", "wait"]
    assert all(e.held for e in chunk_entries(read_manifest(home, spec.campaign_id)) if e.variant == "remainder")


def test_a_fallback_waits_for_a_test_still_sending_but_a_clear_winner_does_not(con, home, tmp_path):
    spec = ab_campaign(con, home, tmp_path, AB % "leader")
    from mailflow.tasks.files.lifecycle import record_transition

    record_transition(home, spec.campaign_id, "sending", "test")
    ids = {v: group(con, spec.campaign_id, v) for v in "AB"}
    for variant, share in (("A", 0.10), ("B", 0.105)):
        deliver(con, spec.campaign_id, variant, ids[variant])
        engage(con, spec.campaign_id, ids[variant][: int(len(ids[variant]) * share)])
    tie = attempt(con, home, spec.campaign_id, NOW, "test")
    assert (tie["outcome"], tie["winner"], tie["final"], tie["early"]) == ("wait", None, False, True)
    assert tie["reason"].endswith("a fallback waits for the test to finish (decided while the test is still sending)")
    engage(con, spec.campaign_id, ids["B"][-300:])
    assert attempt(con, home, spec.campaign_id, NOW, "test")["outcome"] == "winner"


def test_a_decided_campaign_whose_remainder_send_was_interrupted_is_sent_again_by_the_next_decide(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path)
    assert attempt(con, home, spec.campaign_id, NOW, "test")["send_remainder"]
    again = attempt(con, home, spec.campaign_id, NOW, "test")
    assert again["already_decided"] and again["send_remainder"], "stored, but its remainder never went out"
    assert not attempt(con, home, spec.campaign_id, NOW, "test", dry_run=True)["send_remainder"]
    mark_remainder_sent(con, spec.campaign_id, NOW)
    assert not attempt(con, home, spec.campaign_id, NOW, "test")["send_remainder"]
    assert [d["remainder_sent"] for d in decisions_of(con, spec.campaign_id)] == [True]


def test_too_few_delivered_is_too_few_with_fallback_wait(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path, "wait", clicks=(0.01, 0.5), recipients=1200)
    decision = attempt(con, home, spec.campaign_id, NOW, "test")
    assert (decision["outcome"], decision["winner"], decision["p_value"]) == ("too_few", None, None)
    assert "the test needs 500 per variant" in decision["reason"]


def test_holdout_lift_compares_engagement_with_any_mail_in_the_window(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path, clicks=(0.0, 0.0))
    holdout = group(con, spec.campaign_id, "holdout")
    mailed = group(con, spec.campaign_id, "A") + group(con, spec.campaign_id, "B")
    engage(con, spec.campaign_id, mailed[:300], type_="open")
    engage(con, "other", mailed[300:330] + holdout[:20], type_="open")  # another campaign's mail, both groups
    engage(con, "other", holdout[20:40], machine=True)  # an image proxy: not engagement
    engage(con, "older", holdout[40:60], at="2026-11-01T00:00:00+00:00")  # before the test: outside the window
    h = attempt(con, home, spec.campaign_id, NOW, "test")["holdout"]
    assert (h["mailed"]["recipients"], h["mailed"]["engaged"]) == (len(mailed), 330)
    assert (h["holdout"]["recipients"], h["holdout"]["engaged"]) == (len(holdout), 20)
    diff, low, high = difference_interval(Arm("m", len(mailed), 330), Arm("h", len(holdout), 20), 0.95)
    assert (h["lift"], h["ci_low"], h["ci_high"]) == pytest.approx((diff, low, high))
    assert h["window_start"].startswith("2026-12-01T09:00:00") and "ANY campaign" in h["measures"]
    assert decisions_of(con, spec.campaign_id)[0]["holdout_lift"] == pytest.approx(diff)


def test_release_gives_the_remainder_the_winner_once(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path)
    held = len(group(con, spec.campaign_id, "remainder"))
    assert release(home, spec.campaign_id, "B") == held
    assert release(home, spec.campaign_id, "B") == 0, "already released"
    assert not any(e.held for e in chunk_entries(read_manifest(home, spec.campaign_id)))


def test_a_campaign_without_an_ab_test_or_cancelled_is_not_decided(con, home, tmp_path):
    spec, _ = sent_test(con, home, tmp_path)
    from mailflow.tasks.files.lifecycle import record_transition

    with pytest.raises(MailflowError, match="has no A/B test"):
        attempt(con, home, ab_campaign(con, home, tmp_path, None, recipients=10, name="No Test").campaign_id, NOW, "t")
    record_transition(home, spec.campaign_id, "sending", "test")
    record_transition(home, spec.campaign_id, "cancelled", "test")
    with pytest.raises(MailflowError, match="is cancelled"):
        attempt(con, home, spec.campaign_id, NOW, "test")


def test_pick_ab_winner_takes_only_campaigns_whose_wait_elapsed_without_a_decision(con, home, tmp_path):
    spec, finished = sent_test(con, home, tmp_path, "wait", clicks=(0.10, 0.105))
    sending = ab_campaign(con, home, tmp_path, AB % "leader", recipients=100, name="Still Sending")
    from mailflow.tasks.files.lifecycle import record_transition

    record_transition(home, sending.campaign_id, "sending", "test")
    wait = timedelta(hours=2)
    assert due_for_decision(home, decision_status(con), finished + wait - timedelta(seconds=1)) == []
    assert due_for_decision(home, decision_status(con), finished + wait) == [spec.campaign_id]
    waited = attempt(con, home, spec.campaign_id, finished + wait, "test")  # a tie, fallback wait: another 2 h
    assert due_for_decision(home, decision_status(con), finished + 2 * wait - timedelta(seconds=1)) == []
    assert due_for_decision(home, decision_status(con), waited["next_try_at"]) == [spec.campaign_id]
    engage(con, spec.campaign_id, group(con, spec.campaign_id, "B")[-300:])  # B pulls ahead meanwhile
    assert attempt(con, home, spec.campaign_id, finished + 2 * wait, "test")["outcome"] == "winner"
    assert due_for_decision(home, decision_status(con), NOW) == [], "a decision stands; the other is still sending"


def test_ab_decide_refuses_an_unplanned_campaign_or_one_without_a_test_in_one_line_before_prefect(tmp_path, capsys):
    from mailflow.cli import main
    from tests.support.commands import planned_campaign

    home, _ = planned_campaign(tmp_path, recipients=3)
    assert main(["--home", str(home), "ab", "decide", "nope"]) == 2
    assert capsys.readouterr().err.startswith("mailflow: campaign 'nope' is not planned (no ")
    assert main(["--home", str(home), "ab", "decide", "stopped"]) == 2
    assert capsys.readouterr().err == ("mailflow: campaign 'stopped' has no A/B test (its file needs `ab:` and two or "
                                       "more variants)\n")
