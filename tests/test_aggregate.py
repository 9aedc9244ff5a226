"""Aggregate: ledgers fold into deliveries; reloading changes nothing; newer outcomes win."""

import json

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path
from mailflow.tasks.files.lifecycle import state_path, transitions_path
from mailflow.tasks.ingest.ingest import ingest_file
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.campaign import CampaignSpec
from tests.support.inputs import write_csv

SPEC = CampaignSpec(name="News", campaign_id="news", from_addr="a@example.com", subject="s", template="newsletter")


LEDGER_KEYS = ("files_loaded", "records_read", "deliveries", "suppressions")


def load_ledgers(con, home):
    """The ledger half of the summary (tests/test_events_load.py covers the event logs')."""
    result = load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))
    return {k: result[k] for k in LEDGER_KEYS}


def record(sid, status, attempt=1, code=250):
    return LedgerRecord("news", sid, "A", 0, status, code, None, "", attempt)


def planned(con, home, tmp_path, n=3):
    rows = "".join(f"u{i}@example.com\n" for i in range(n))
    ingest_file(con, write_csv(tmp_path / "s.csv", "email\n" + rows))
    plan(con, home, SPEC, 100)
    # These tests write ledgers without the send flow that records its moves: the campaign is one planned
    # before moves were recorded, whose status the ledger decides (sql/queries/aggregate.sql).
    state_path(home, "news").unlink()
    transitions_path(home, "news").unlink()


def test_load_is_idempotent_and_sets_campaign_status(con, home, tmp_path):
    from mailflow.tasks.files.lifecycle import record_transition

    planned(con, home, tmp_path)
    record_transition(home, "news", "sending", "test", "as the send stage records it")
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        w.append(record(1, "delivered"))
        w.append(record(2, "bounced", code=550))
    first = load_ledgers(con, home)  # the ledger, and the campaign's lifecycle moves (planned, sending)
    assert first == {"files_loaded": 2, "records_read": 2, "deliveries": 2, "suppressions": 0}
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "sending"
    assert load_ledgers(con, home)["files_loaded"] == 0
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        w.append(record(3, "delivered"))
    record_transition(home, "news", "sent", "test", "as the send stage records it")
    # the grown ledger is continued where the last run stopped: only its new record is read
    assert load_ledgers(con, home) == {"files_loaded": 2, "records_read": 1, "deliveries": 3, "suppressions": 0}
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "sent"
    stats = con.execute("SELECT audience, delivered, bounced, pending FROM campaign_stats").fetchone()
    assert stats == (3, 2, 1, 0)


def test_latest_outcome_wins_and_attempts_are_kept(con, home, tmp_path):
    planned(con, home, tmp_path)
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        w.append(record(1, "deferred", code=451))
        w.append(record(1, "delivered", attempt=2))
    load_ledgers(con, home)
    assert con.execute("SELECT status, attempts, smtp_code FROM deliveries").fetchone() == ("delivered", 2, 250)


def test_a_torn_record_is_skipped_not_fatal(con, home, tmp_path):
    planned(con, home, tmp_path)
    path = ledger_path(home, "news", 0)
    with LedgerWriter(path) as w:
        w.append(record(1, "delivered"))
    with path.open("ab") as fh:
        fh.write(b'{"campaign_id": "news", "subscr')
    with LedgerWriter(path) as w:  # the resumed writer ends the torn line first
        w.append(record(2, "delivered"))
    assert load_ledgers(con, home)["deliveries"] == 2
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["subscriber_id"] == 2


def test_a_campaign_with_a_recipient_deferred_is_not_shown_sent(con, home, tmp_path):
    planned(con, home, tmp_path)
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        for sid in (1, 2):
            w.append(record(sid, "delivered"))
        w.append(record(3, "deferred", code=451))
    load_ledgers(con, home)
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "sending"
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        w.append(record(3, "delivered", attempt=2))
    load_ledgers(con, home)
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "sent"


def test_lifecycle_moves_are_loaded_once_and_the_status_follows_the_latest(con, home, tmp_path):
    from mailflow.tasks.files.lifecycle import record_transition

    planned(con, home, tmp_path)
    record_transition(home, "news", "sending", "flow send_campaign (pid 7)", "1 chunks due")
    record_transition(home, "news", "paused", "mailflow campaigns pause (user ana)", "typo")
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        for sid in (1, 2, 3):
            w.append(record(sid, "delivered"))  # every recipient has an outcome, yet a person paused it
    load_ledgers(con, home)
    rows = con.execute("SELECT seq, from_state, to_state, moved_by, reason FROM campaign_transitions ORDER BY seq").fetchall()
    assert rows == [(1, "planned", "sending", "flow send_campaign (pid 7)", "1 chunks due"),
                    (2, "sending", "paused", "mailflow campaigns pause (user ana)", "typo")]
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "paused"
    record_transition(home, "news", "cancelled", "mailflow campaigns cancel (user ana)", "")
    load_ledgers(con, home)
    load_ledgers(con, home)
    assert con.execute("SELECT count(*) FROM campaign_transitions").fetchone()[0] == 3
    assert con.execute("SELECT status FROM campaigns").fetchone()[0] == "cancelled"


def test_the_holdout_and_the_remainder_are_not_pending_and_the_report_says_what_they_get(con, home, tmp_path):
    from dataclasses import replace

    from mailflow.tasks.aggregate.report import campaign_report, ledgers_ahead
    from mailflow.tasks.aggregate.report_text import report_markdown
    from mailflow.tasks.plan.campaign import AbTest, Variant

    ingest_file(con, write_csv(tmp_path / "s.csv", "email\n" + "".join(f"u{i}@example.com\n" for i in range(200))))
    spec = replace(SPEC, variants=(Variant("A"), Variant("B", subject="b")), ab=AbTest(test_fraction=0.5, holdout_fraction=0.2))
    plan(con, home, spec, 100)
    stats = {v: (a, p, h) for v, a, p, h in con.execute("SELECT variant, audience, pending, held FROM campaign_stats").fetchall()}
    assert set(stats) == {"A", "B", "holdout", "remainder"}
    assert stats["holdout"][1:] == (0, 0) and stats["remainder"][1:] == (0, stats["remainder"][0]) and stats["remainder"][0]
    assert stats["A"][1] == stats["A"][0], "a variant's recipients not sent yet are pending"
    report = campaign_report(con, "news")
    text = report_markdown(report)
    assert f"{stats['holdout'][0]} in the holdout were mailed nothing" in text
    assert f"{stats['remainder'][0]} in the remainder are held for the A/B winner" in text
    assert report["total"]["pending"] == stats["A"][0] + stats["B"][0]
    assert ledgers_ahead(report, {"sent": 1, "delivered": 1}) and not ledgers_ahead(report, {})
    assert "run `mailflow aggregate`" in report_markdown(report | {"ledgers_ahead": True})
