"""Subscription events into the warehouse: opt-ins, list unsubscribes and preferences, and the published preferences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from mailflow.tasks.aggregate.subscriptions import apply_subscription_events, publish_preferences
from mailflow.tasks.files.preferences import ROW_GROUP, PreferenceReader, Preferences, preferences_path, write_preferences
from tests.support.new_events import new_events

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def optin(email: str, lst: str, minutes: int = 10, **data) -> dict:
    return {"type": "optin_confirmed", "occurred_at": at(minutes), "ip": "198.51.100.0", "email": email, "list": lst,
            "consented_at": at(minutes - 5), "form_version": "v3", "source": "form", **data}


def subscriber(con, email: str, status: str = "active", lists: tuple[str, ...] = (), changed: int | None = None,
               attributes: str = "{}") -> int:
    sid = con.execute("INSERT INTO subscribers (email, email_original, status, status_changed_at, attributes) "
                      "VALUES (?, ?, ?, ?, ?) RETURNING subscriber_id",
                      [email, email, status, at(changed) if changed is not None else None, attributes]).fetchone()[0]
    for name in lists:
        con.execute("INSERT INTO lists (name) VALUES (?) ON CONFLICT (name) DO NOTHING", [name])
        con.execute("INSERT INTO list_memberships (list_id, subscriber_id) SELECT list_id, ? FROM lists WHERE name = ?",
                    [sid, name])
    return sid


def lists_of(con, sid: int) -> list[str]:
    return [r[0] for r in con.execute("SELECT l.name FROM list_memberships JOIN lists AS l USING (list_id) "
                                      "WHERE subscriber_id = ? ORDER BY 1", [sid]).fetchall()]


def apply(con, events: list[dict]) -> None:
    new_events(con, events)
    apply_subscription_events(con)


def test_a_confirmed_optin_makes_an_active_subscriber_a_list_member_and_a_consent_record(con):
    events = [optin("new@example.com", "newsletter", first_name="Ann")]
    apply(con, events)
    row = con.execute("SELECT subscriber_id, status, first_name, double_opt_in, consent_source, opted_in_at "
                      "FROM subscribers WHERE email = 'new@example.com'").fetchone()
    sid, status, first_name, confirmed, source, opted_in_at = row
    assert (status, first_name, confirmed, source) == ("active", "Ann", "confirmed", "form")
    assert opted_in_at == T0 + timedelta(minutes=10)
    assert lists_of(con, sid) == ["newsletter"]
    consent = con.execute("SELECT subscriber_id, list, consented_at, confirmed_at, ip, form_version, source "
                          "FROM consents").fetchall()
    assert consent == [(sid, "newsletter", T0 + timedelta(minutes=5), T0 + timedelta(minutes=10), "198.51.100.0", "v3",
                        "form")]


def test_applying_the_same_events_again_changes_nothing(con):
    events = [optin("new@example.com", "newsletter", event_id="e1"),
              optin("new@example.com", "offers", minutes=20, event_id="e2")]
    apply(con, events)
    apply(con, events)
    assert con.execute("SELECT count(*) FROM subscribers").fetchone()[0] == 1
    assert con.execute("SELECT count(*) FROM consents").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM list_memberships").fetchone()[0] == 2


def test_an_optin_after_an_unsubscribe_reactivates_and_lifts_the_unsubscribe_suppression(con):
    sid = subscriber(con, "back@example.com", "unsubscribed", changed=0)
    con.execute("INSERT INTO suppressions (email, cause, created_at) VALUES ('back@example.com', 'unsubscribe', ?)", [at(0)])
    apply(con, [optin("back@example.com", "newsletter")])
    assert con.execute("SELECT status, double_opt_in FROM subscribers WHERE subscriber_id = ?", [sid]).fetchone() == \
        ("active", "confirmed")
    assert con.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 0
    assert lists_of(con, sid) == ["newsletter"]


def test_an_optin_never_revives_a_bounced_or_complained_address(con):
    bounced = subscriber(con, "gone@example.com", "bounced", changed=0)
    complained = subscriber(con, "angry@example.com", "complained", changed=0)
    con.execute("INSERT INTO suppressions (email, cause, created_at) VALUES "
                "('gone@example.com', 'hard_bounce', ?), ('angry@example.com', 'complaint', ?)", [at(0), at(0)])
    apply(con, [optin("gone@example.com", "newsletter"), optin("angry@example.com", "newsletter")])
    statuses = dict(con.execute("SELECT subscriber_id, status FROM subscribers").fetchall())
    assert statuses == {bounced: "bounced", complained: "complained"}
    assert con.execute("SELECT count(*) FROM suppressions").fetchone()[0] == 2


def test_an_unsubscribe_newer_than_the_optin_stays(con):
    sid = subscriber(con, "left@example.com", "unsubscribed", changed=30)
    apply(con, [optin("left@example.com", "newsletter", minutes=10)])
    assert con.execute("SELECT status FROM subscribers WHERE subscriber_id = ?", [sid]).fetchone() == ("unsubscribed",)


def test_a_list_unsubscribe_leaves_only_the_named_lists_and_stays_subscribed(con):
    sid = subscriber(con, "a@example.com", lists=("newsletter", "offers", "events"))
    other = subscriber(con, "b@example.com", lists=("offers",))
    apply(con, [{"type": "list_unsubscribe", "subscriber_id": sid, "campaign_id": "c", "occurred_at": at(1),
                 "lists": ["offers", "events"], "reason": "too_many"}])
    assert lists_of(con, sid) == ["newsletter"]
    assert lists_of(con, other) == ["offers"]
    assert con.execute("SELECT status FROM subscribers WHERE subscriber_id = ?", [sid]).fetchone() == ("active",)


def test_preferences_set_each_offered_list_and_the_frequency_keeping_other_attributes(con):
    sid = subscriber(con, "p@example.com", lists=("newsletter", "offers", "internal"), attributes='{"plan": "pro"}')
    con.execute("INSERT INTO lists (name) VALUES ('events')")
    apply(con, [{"type": "preferences", "subscriber_id": sid, "occurred_at": at(1),
                 "offered": ["newsletter", "offers", "events"], "lists": ["newsletter", "events"], "frequency": "weekly"}])
    assert lists_of(con, sid) == ["events", "internal", "newsletter"]  # "internal" was not offered: untouched
    attributes = con.execute("SELECT attributes->>'plan', attributes->>'frequency' FROM subscribers").fetchone()
    assert attributes == ("pro", "weekly")


def test_choices_of_a_subscriber_the_warehouse_lacks_change_nothing(con):
    apply(con, [{"type": "preferences", "subscriber_id": 404, "occurred_at": at(1), "offered": ["newsletter"],
                 "lists": ["newsletter"], "frequency": "weekly"}])
    assert con.execute("SELECT count(*) FROM list_memberships").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM lists").fetchone()[0] == 0


def test_the_latest_choice_per_list_wins_within_one_run(con):
    sid = subscriber(con, "x@example.com", lists=("newsletter",))
    apply(con, [
        {"type": "list_unsubscribe", "subscriber_id": sid, "occurred_at": at(1), "lists": ["newsletter"]},
        {"type": "preferences", "subscriber_id": sid, "occurred_at": at(2), "offered": ["newsletter", "offers"],
         "lists": ["newsletter", "offers"], "frequency": "all"},
        {"type": "list_unsubscribe", "subscriber_id": sid, "occurred_at": at(3), "lists": ["offers"]},
    ])
    assert lists_of(con, sid) == ["newsletter"]


def test_published_preferences_are_looked_up_by_subscriber(con, home):
    a = subscriber(con, "a@example.com", lists=("offers", "newsletter"))
    b = subscriber(con, "b@example.com")
    apply(con, [{"type": "preferences", "subscriber_id": a, "occurred_at": at(1), "offered": [], "frequency": "monthly"}])
    reader = PreferenceReader(home)
    assert reader.lookup(a) is None  # nothing published yet
    con.execute("SELECT count(*) FROM subscribers").fetchone()  # as aggregate leaves its connection: a result unfinished
    publish_preferences(con, home)
    assert reader.lookup(a) == Preferences(("newsletter", "offers"), "monthly")
    assert reader.lookup(b) == Preferences((), None)
    assert reader.lookup(10**9) is None


def test_a_lookup_reads_the_one_row_group_holding_the_id_and_sees_a_replaced_file(home):
    count = ROW_GROUP * 3 + 5
    frame = pl.DataFrame({"subscriber_id": range(count, 0, -1), "lists": [["n"]] * count, "frequency": ["all"] * count},
                         schema={"subscriber_id": pl.Int64, "lists": pl.List(pl.String), "frequency": pl.String})
    write_preferences(home, frame)
    reader = PreferenceReader(home)
    read = []
    parquet = reader._open()
    original = parquet.read_row_group
    parquet.read_row_group = lambda group, *a, **k: read.append(group) or original(group, *a, **k)
    assert reader.lookup(ROW_GROUP + 2) == Preferences(("n",), "all")
    assert read == [1]  # sorted on write: ids ROW_GROUP+1 .. 2*ROW_GROUP are the second group
    write_preferences(home, frame.tail(10).with_columns(frequency=pl.lit("weekly")))
    assert reader.lookup(3) == Preferences(("n",), "weekly")
    preferences_path(home).unlink()
    assert reader.lookup(3) is None
