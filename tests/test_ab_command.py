"""`mailflow ab decide` end to end: a test sent to a real SMTP receiver, clicks logged, the remainder sent once with the winner."""

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from email import message_from_bytes

import pytest

from mailflow.cli import main
from mailflow.tasks.core.warehouse import connect
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.files.lifecycle import transitions
from tests.support.events import append, event, events_file

pytestmark = [pytest.mark.flow, pytest.mark.integration, pytest.mark.slow]

CAMPAIGN = """name: ab-test
from: "News <news@example.com>"
lists: [news]
template: newsletter
subject: "Hi {{ subscriber.first_name }}"
variants:
  - {name: A}
  - {name: B, subject: "B for {{ subscriber.first_name }}"}
ab: {test_fraction: 0.5, holdout_fraction: 0.1, metric: unique_clicks, min_per_variant: 100, wait: 1h, fallback: wait}
"""


def test_ab_decide_sends_the_remainder_once_with_the_winner_and_the_decision_stands(
        prefect_harness, tmp_path, capsys, monkeypatch):
    home = tmp_path / "h"
    (tmp_path / "s.csv").write_text("email,first_name\n" + "".join(f"u{i}@example.com,U{i}\n" for i in range(800)))
    (tmp_path / "c.yaml").write_text(CAMPAIGN)

    def mailflow(*args):
        code = main(["--home", str(home), *args])
        out, err = capsys.readouterr()
        return code, out, err

    monkeypatch.setenv("MAILFLOW_TRACKING__SECRET", "test-secret")
    # The clicks below are logged moments after the send: within engagement.fast_click_seconds of delivery they
    # would be flagged machine clicks (fast_click) whenever the send is quick, and the test would lose its winner.
    monkeypatch.setenv("MAILFLOW_ENGAGEMENT__FAST_CLICK_SECONDS", "0")
    with Receiver(record=True) as rx:
        monkeypatch.setenv("MAILFLOW_SMTP__POOLS__DEFAULT__RELAYS", f'["127.0.0.1:{rx.port}"]')
        assert mailflow("ingest", str(tmp_path / "s.csv"), "--list", "news")[0] == 0
        assert mailflow("plan", str(tmp_path / "c.yaml"))[0] == 0
        code, out, err = mailflow("send", "ab-test", "--skip-preflight")  # no DNS of its own: tests/test_preflight.py
        assert code == 0 and "recipients held for the A/B winner" in out, err
        with connect(home / "mailflow.duckdb", read_only=True) as con:
            groups = {v: dict(con.execute("SELECT s.email, r.subscriber_id FROM campaign_recipients r JOIN subscribers s "
                                          "USING (subscriber_id) WHERE r.variant = $v", {"v": v}).fetchall())
                      for v in ("A", "B", "holdout", "remainder")}
        test_mailed = Counter(r for m in rx.received for r in m.recipients)
        assert set(test_mailed) == set(groups["A"]) | set(groups["B"]) and set(test_mailed.values()) == {1}
        clickers = {"A": list(groups["A"].values())[:10], "B": list(groups["B"].values())[:60]}
        append(events_file(home), *(event("click", sid, "ab-test", v, at=datetime.now(UTC).isoformat())
                                    for v, ids in clickers.items() for sid in ids))

        code, out, err = mailflow("ab", "decide", "ab-test", "--dry-run")
        assert code == 0 and "A/B test dry run, not stored: winner B" in out, err
        assert f"remainder: {len(groups['remainder'])} recipients would be sent with B" in out
        assert len(rx.received) == len(test_mailed), "a dry run sends nothing"

        code, out, err = mailflow("ab", "decide", "ab-test")
        assert code == 0, err
        assert "A/B test decided (attempt 1" in out and ": winner B\n" in out and "(decided early: " in out
        assert f"B: 60 of {len(groups['B'])} = " in out and f"A: 10 of {len(groups['A'])} = " in out
        assert f"remainder: {len(groups['remainder'])} recipients released to B; sent: {len(groups['remainder'])} delivered" in out
        mailed = len(groups["A"]) + len(groups["B"])
        assert f"(engaged with any mail: mailed {70 / mailed:.1%} of {mailed}, holdout 0.0% of {len(groups['holdout'])}" in out
        assert "campaign sent" in out
        received = Counter(r for m in rx.received for r in m.recipients)
        assert received == Counter(set(groups["A"]) | set(groups["B"]) | set(groups["remainder"])), \
            "everyone but the holdout got exactly one message"
        remainder_subjects = {message_from_bytes(m.data)["Subject"] for m in rx.received
                              if m.recipients[0] in groups["remainder"]}
        assert {s.split(" for ")[0] for s in remainder_subjects} == {"B"}, "the remainder got the winner's subject"

        code, out, err = mailflow("--json", "ab", "decide", "ab-test")
        again = json.loads(out)
        assert code == 0 and again["already_decided"] and again["remainder_sent"] and again["attempt"] == 1
        assert len(rx.received) == sum(received.values()), "deciding again sends nothing"
    assert [m.to_state for m in transitions(home, "ab-test")] == ["planned", "sending", "sent", "sending", "sent"]
    code, out, _ = mailflow("--json", "sql", "SELECT outcome, winner, final, remainder_sent, remainder_recipients, "
                                             "holdout_lift IS NOT NULL AS lift FROM ab_decisions")
    assert json.loads(out) == [{"outcome": "winner", "winner": "B", "final": True, "remainder_sent": True,
                                "remainder_recipients": len(groups["remainder"]), "lift": True}]


def test_pick_ab_winner_decides_only_the_campaigns_whose_wait_elapsed(prefect_harness, tmp_path):
    from mailflow.flows.pick_ab_winner import pick_ab_winner
    from tests.support.abtest import sent_ab_test

    home = tmp_path / "home"
    rule = "{test_fraction: %s, holdout_fraction: 0.1, min_per_variant: 100, fallback: wait, wait: %s}"
    with connect(home / "mailflow.duckdb") as con:  # "tomorrow" has no remainder: its winner sends nothing
        _, finished = sent_ab_test(con, home, tmp_path, rule % (0.6, "2h"), (0.10, 0.105), recipients=1000, name="Due")
        sent_ab_test(con, home, tmp_path, rule % (0.9, "1d"), (0.05, 0.30), recipients=1000, name="Tomorrow")
    at = finished + timedelta(hours=3)
    result = pick_ab_winner(overrides={"home": str(home)}, now=at)
    assert [(d["campaign_id"], d["outcome"], d["stored"]) for d in result["decisions"]] == [("due", "wait", True)]
    assert result["decisions"][0]["next_try_at"] == at + timedelta(hours=2), "a tie waits another `wait`"
    assert pick_ab_winner(overrides={"home": str(home)}, now=at + timedelta(hours=1))["decisions"] == []
    later = pick_ab_winner(overrides={"home": str(home)}, now=finished + timedelta(days=1, minutes=1))["decisions"]
    assert sorted((d["campaign_id"], d["outcome"]) for d in later) == [("due", "wait"), ("tomorrow", "winner")]
