"""Suppression feedback: unsubscribes, complaints and hard bounces suppress at once, soft bounces by count; each row names its cause."""

from datetime import UTC, datetime, timedelta

import pytest

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.files.suppress import SuppressionLog
from mailflow.tasks.ingest.ingest import ingest_file
from tests.support.events import append, event, events_file
from tests.support.inputs import write_csv
from tests.support.ledgers import ledger_record, write_ledger

NOW = datetime.now(UTC)


def aggregate(con, home):
    return load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))


@pytest.fixture
def people(con, tmp_path):
    ingest_file(con, write_csv(tmp_path / "s.csv", "email\nann@example.com\nbob@example.com\ncat@example.com\n"))
    return dict(con.execute("SELECT split_part(email, '@', 1), subscriber_id FROM subscribers").fetchall())


def suppression(con, email):
    return con.execute("SELECT cause, source, event_id, campaign_id, subscriber_id FROM suppressions WHERE email = ?",
                       [email]).fetchone()


def status(con, subscriber_id):
    return con.execute("SELECT status FROM subscribers WHERE subscriber_id = ?", [subscriber_id]).fetchone()[0]


@pytest.mark.parametrize("line,cause,state", [
    (dict(type_="unsubscribe"), "unsubscribe", "unsubscribed"),
    (dict(type_="complaint", kind="complaint", reason="complaint"), "complaint", "complained"),
    (dict(type_="bounce", kind="hard", reason="user_unknown", status="5.1.1", smtp_code=550), "bounce:user_unknown",
     "bounced"),
])
def test_an_event_suppresses_at_once_naming_itself_and_the_status_follows(con, home, people, line, cause, state):
    append(events_file(home), event(subscriber_id=people["ann"], event_id="the-event", **line),
           event("open", people["bob"]))
    aggregate(con, home)
    assert suppression(con, "ann@example.com") == (cause, "events", "the-event", "news", people["ann"])
    assert (status(con, people["ann"]), status(con, people["bob"])) == (state, "active")
    assert suppression(con, "bob@example.com") is None


def test_the_intakes_own_log_line_first_then_its_event_gives_the_row_its_event(con, home, people):
    SuppressionLog(home, "bounces").append("ann@example.com", "complaint", "news")
    aggregate(con, home)
    assert suppression(con, "ann@example.com") == ("complaint", "news", None, None, None)
    append(events_file(home), event("complaint", people["ann"], event_id="arf-1", kind="complaint",
                                    provider="sendgrid"))
    aggregate(con, home)
    assert suppression(con, "ann@example.com") == ("complaint", "news", "arf-1", "news", people["ann"])
    assert status(con, people["ann"]) == "complained"


def test_a_webhook_event_names_its_provider(con, home, people):
    append(events_file(home), event("bounce", people["cat"], event_id="wh-1", kind="hard", reason="user_unknown",
                                    source="webhook:sendgrid"))  # the field tasks/track/webhooks.py writes
    aggregate(con, home)
    assert suppression(con, "cat@example.com")[:3] == ("bounce:user_unknown", "webhook:sendgrid", "wh-1")


def test_a_webhook_names_its_provider_even_after_its_own_log_line_named_the_campaign(con, home, people):
    SuppressionLog(home, "track-7").append("cat@example.com", "complaint", "news")  # as the webhook endpoint logs it
    append(events_file(home), event("complaint", people["cat"], event_id="wh-2", kind="complaint", reason="complaint",
                                    source="webhook:mailgun"))
    aggregate(con, home)
    assert suppression(con, "cat@example.com") == ("complaint", "webhook:mailgun", "wh-2", "news", people["cat"])


def test_a_hard_bounce_in_a_ledger_names_its_delivery(con, home, people):
    write_ledger(home, ledger_record(people["bob"], "bounced", kind="hard", reason="domain_unknown"),
                 ledger_record(people["cat"], "bounced", kind="soft", reason="mailbox_full"))
    aggregate(con, home)
    assert suppression(con, "bob@example.com") == ("bounce:domain_unknown", "ledger", None, "news", people["bob"])
    assert status(con, people["bob"]) == "bounced"
    assert suppression(con, "cat@example.com") is None and status(con, people["cat"]) == "active"


def test_soft_bounces_from_ledgers_and_events_suppress_by_count_within_the_window(con, home, people):
    recent, old = NOW - timedelta(days=1), NOW - timedelta(days=40)
    for campaign in ("c1", "c2"):  # ann: two send-time soft bounces ...
        write_ledger(home, ledger_record(people["ann"], "bounced", recent, campaign_id=campaign, kind="soft",
                                         reason="mailbox_full"), campaign_id=campaign)
    write_ledger(home, ledger_record(people["bob"], "bounced", old, campaign_id="c0", kind="soft"), campaign_id="c0")
    soft = dict(kind="soft", reason="mailbox_full", at=recent.isoformat())
    append(events_file(home),
           event("bounce", people["bob"], campaign_id="c1", **soft), event("bounce", people["bob"], campaign_id="c2", **soft),
           event("bounce", people["cat"], campaign_id="c1", **soft),  # cat: the same campaign's bounce three ways
           event("bounce", people["cat"], campaign_id="c1", **soft), event("bounce", people["cat"], campaign_id="c1", **soft))
    aggregate(con, home)
    assert suppression(con, "ann@example.com") is None  # two, below the limit of 3
    assert suppression(con, "bob@example.com") is None  # one of his three is outside the 30 days
    assert suppression(con, "cat@example.com") is None  # one campaign's bounce, counted once
    # ... and a DSN for a third campaign: the third soft bounce
    append(events_file(home), event("bounce", people["ann"], campaign_id="c3", event_id="dsn-3",
                                    **(soft | {"at": (recent + timedelta(hours=1)).isoformat()})))
    aggregate(con, home)
    assert suppression(con, "ann@example.com") == ("soft_bounces", "soft_bounces", "dsn-3", "c3", people["ann"])
    assert status(con, people["ann"]) == "active"  # a soft-bounce suppression decays: the status stays


def test_a_complaint_outranks_an_earlier_unsubscribe_and_a_soft_bounce_suppression_gives_way(con, home, people):
    append(events_file(home), event("unsubscribe", people["ann"], at=(NOW - timedelta(hours=2)).isoformat()))
    aggregate(con, home)
    con.execute("INSERT INTO suppressions (email, cause, created_at) VALUES ('bob@example.com', 'soft_bounces', now())")
    append(events_file(home), event("complaint", people["ann"], kind="complaint"),
           event("unsubscribe", people["bob"], event_id="bob-out"))
    aggregate(con, home)
    assert status(con, people["ann"]) == "complained"
    assert suppression(con, "ann@example.com")[:2] == ("complaint", "events")  # a later opt-in must not lift it
    assert suppression(con, "bob@example.com")[:3] == ("unsubscribe", "events", "bob-out")


def test_delay_notices_are_not_soft_bounces_and_never_add_up_to_a_suppression(con, home, people):
    soft = dict(kind="soft", reason="unknown", at=(NOW - timedelta(days=1)).isoformat())
    append(events_file(home), *[event("bounce", people["ann"], campaign_id=f"c{n}", delayed=True, **soft) for n in range(4)],
           *[event("bounce", people["bob"], campaign_id=f"c{n}", **soft) for n in range(3)])
    aggregate(con, home)
    assert suppression(con, "ann@example.com") is None  # four delay notices: her mail was still being tried
    assert suppression(con, "bob@example.com")[0] == "soft_bounces"
    soft_counts = dict(con.execute("SELECT subscriber_id, count(*) FILTER (WHERE soft_bounced) FROM recipient_engagement "
                                   "GROUP BY ALL").fetchall())
    assert soft_counts.get(people["ann"], 0) == 0 and soft_counts[people["bob"]] == 3
