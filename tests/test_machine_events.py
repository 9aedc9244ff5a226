"""Machine opens and clicks are flagged, never deleted: one synthetic case per rule, and people who must stay unflagged."""

import json

import pytest

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.aggregate.machine import classify_addresses, classify_agents
from tests.support.events import append, event, events_file
from tests.support.ledgers import at, ledger_record, write_ledger

IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
HOME = "203.0.113.0"  # a home connection, truncated to its /24 as the tracking service logs it


def aggregate(con, home):
    return load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))


def verdicts(con):
    return dict(con.execute("SELECT event_id, machine_reason FROM events").fetchall())


def flagged(con):
    return {k: v for k, v in verdicts(con).items() if v is not None}


def delivered(home, *subscribers):
    write_ledger(home, *(ledger_record(sid) for sid in subscribers))


@pytest.mark.parametrize("line,reason", [
    (dict(ip="17.58.63.0", user_agent="Mozilla/5.0"), "apple_mpp"),
    (dict(ip="5f3a0c1d9e8b7a6f5f3a0c1d9e8b7a6f", user_agent="Mozilla/5.0"), "apple_mpp"),  # tracking.ip = hash
    (dict(ip=None, user_agent="Mozilla/5.0"), "apple_mpp"),  # tracking.ip = none
    (dict(ip="2620:149:a00::", user_agent="Mozilla/5.0"), "apple_mpp"),
    (dict(ip="66.249.84.0", user_agent=GMAIL), "image_proxy:google"),
    (dict(ip=HOME, user_agent=GMAIL), "image_proxy:google"),
    (dict(ip="74.125.151.0", user_agent="Mozilla/5.0 (Windows NT 10.0)"), "image_proxy:google"),
    (dict(ip=HOME, user_agent="YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"),
     "image_proxy:yahoo"),
    (dict(ip="98.137.10.0", user_agent="Mozilla/5.0 (X11; Linux x86_64)"), "image_proxy:yahoo"),
    (dict(ip=HOME, user_agent=IPHONE, at=at(1.5)), "fast_open"),
    (dict(ip=HOME, user_agent=IPHONE, at=at(-1)), "fast_open"),  # the tracking host's clock a second behind
])
def test_proxy_and_prefetch_opens_are_flagged_and_a_person_is_not(con, home, line, reason):
    delivered(home, 1, 2)
    append(events_file(home), event("open", 1, event_id="machine", **({"at": at(3600)} | line)),
           event("open", 2, event_id="person", ip=HOME, user_agent=IPHONE, at=at(45)))
    assert aggregate(con, home)["events_machine"] == 1
    assert verdicts(con) == {"machine": reason, "person": None}
    assert con.execute("SELECT count(*) FROM events WHERE is_machine").fetchone()[0] == 1  # kept, flagged


def test_apple_networks_with_a_real_client_and_the_bare_agent_elsewhere_are_people(con, home):
    delivered(home, 1, 2)
    append(events_file(home), event("open", 1, event_id="apple-staff", ip="17.58.63.0", user_agent=IPHONE, at=at(60)),
           event("open", 2, event_id="bare-home", ip=HOME, user_agent="Mozilla/5.0", at=at(60)),
           event("open", 2, event_id="old-send", ip=HOME, user_agent=IPHONE, at=at(-86400)))
    aggregate(con, home)
    assert flagged(con) == {}


def test_scanner_agents_flag_clicks(con, home):
    delivered(home, 1)
    append(events_file(home),
           event("click", 1, event_id="barracuda", link=0, user_agent="Mozilla/5.0 Barracuda Sentinel", at=at(300)),
           event("click", 1, event_id="safelinks", link=1, user_agent="Microsoft SafeLinks Preview", at=at(400)),
           event("click", 1, event_id="gmail-proxy", link=2, user_agent=GMAIL, ip=HOME, at=at(900)))
    aggregate(con, home)
    # GoogleImageProxy fetches images, not links: its name on a click is no scanner's
    assert flagged(con) == {"barracuda": "scanner:barracuda", "safelinks": "scanner:microsoft"}


def test_a_burst_of_links_before_any_open_is_a_scanner_and_the_same_clicks_after_reading_are_a_person(con, home):
    delivered(home, 1, 2)
    burst = [event("click", 1, event_id=f"scan-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(30 + n * 0.4))
             for n in range(3)]
    person = [event("open", 2, event_id="read", ip=HOME, user_agent=IPHONE, at=at(20)),
              *(event("click", 2, event_id=f"click-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(40 + n * 0.4))
                for n in range(3))]
    slow = [event("click", 3, event_id=f"slow-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(100 + n * 30))
            for n in range(3)]
    append(events_file(home), *burst, *person, *slow)
    aggregate(con, home)
    assert flagged(con) == {f"scan-{n}": "scanner_burst" for n in range(3)}


def test_a_burst_over_every_link_of_a_short_message_is_a_scanner(con, home):
    links = home / "campaigns" / "news" / "links.json"
    links.parent.mkdir(parents=True)
    links.write_text(json.dumps({"links": ["https://example.com/a", "https://example.com/b"]}))
    delivered(home, 1, 2)
    append(events_file(home),
           *(event("click", 1, event_id=f"scan-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(30 + n * 0.5))
             for n in range(2)),
           event("click", 2, event_id="same-link-twice-a", link=0, ip=HOME, user_agent=IPHONE, at=at(30)),
           event("click", 2, event_id="same-link-twice-b", link=0, ip=HOME, user_agent=IPHONE, at=at(30.5)))
    aggregate(con, home)
    assert flagged(con) == {"scan-0": "scanner_burst", "scan-1": "scanner_burst"}


def test_a_click_within_seconds_of_delivery_before_any_open_is_a_machine(con, home):
    delivered(home, 1, 2)
    append(events_file(home), event("click", 1, event_id="fast", link=0, ip=HOME, user_agent=IPHONE, at=at(1)),
           event("click", 2, event_id="images-off", link=0, ip=HOME, user_agent=IPHONE, at=at(90)))
    aggregate(con, home)
    assert flagged(con) == {"fast": "fast_click"}


def test_evidence_arriving_in_a_later_run_rejudges_the_recipients_earlier_events(con, home):
    append(events_file(home), event("open", 1, event_id="early", ip=HOME, user_agent=IPHONE, at=at(1)),
           *(event("click", 2, event_id=f"burst-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(60 + n * 0.3))
             for n in range(3)))
    aggregate(con, home)
    assert flagged(con) == {f"burst-{n}": "scanner_burst" for n in range(3)}  # no delivery time known yet
    delivered(home, 1)  # the ledger comes later: the open was one second after delivery
    aggregate(con, home)
    assert flagged(con) == {"early": "fast_open"} | {f"burst-{n}": "scanner_burst" for n in range(3)}
    # a later file brings subscriber 2's open, read before the burst: a person clicking quickly
    append(events_file(home, "track-101-0"), event("open", 2, event_id="read", ip=HOME, user_agent=IPHONE, at=at(50)))
    aggregate(con, home)
    assert flagged(con) == {"early": "fast_open"}
    assert aggregate(con, home)["events_loaded"] == 0 and flagged(con) == {"early": "fast_open"}
    assert con.execute("SELECT count(*) FROM events").fetchone()[0] == 5
    # a burst after that open, in a later run still: measured against the open loaded before, a person's
    append(events_file(home, "track-102-0"),
           *(event("click", 2, event_id=f"later-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(200 + n * 0.3))
             for n in range(3)),
           *(event("click", 3, event_id=f"unread-{n}", link=n, ip=HOME, user_agent=IPHONE, at=at(200 + n * 0.3))
             for n in range(3)))
    aggregate(con, home)
    assert flagged(con) == {"early": "fast_open"} | {f"unread-{n}": "scanner_burst" for n in range(3)}


def test_agents_and_addresses_are_classified_once_per_value():
    import polars as pl

    agents = classify_agents(pl.Series(["Mozilla/5.0 Barracuda", IPHONE, None, "curl/8.1", "Mimecast Link Scanner"]))
    assert dict(zip(agents["user_agent"], agents["reason"])) == {
        "Mozilla/5.0 Barracuda": "scanner:barracuda", "curl/8.1": "scanner:script", "Mimecast Link Scanner": "scanner:mimecast"}
    found = classify_addresses(pl.Series(["17.0.0.0", "16.255.255.0", "209.85.255.0", "2001:4860:4860::", "ab" * 16,
                                          "not an address", HOME, None]))
    assert dict(zip(found["ip"], found["network"])) == {
        "17.0.0.0": "apple", "209.85.255.0": "google", "2001:4860:4860::": "google", "ab" * 16: "unreadable",
        "not an address": "unreadable"}


def test_engagement_thresholds_are_settings_and_a_bad_one_is_a_clear_error():
    from mailflow.errors import MailflowError

    settings = load_settings(overrides={"engagement": {"fast_open_seconds": 5, "burst_links": 4}}, environ={})
    assert (settings.engagement.fast_open_seconds, settings.engagement.burst_links) == (5.0, 4)
    assert load_settings(environ={"MAILFLOW_ENGAGEMENT__BURST_SECONDS": "1.5"}).engagement.burst_seconds == 1.5
    with pytest.raises(MailflowError, match="engagement.fast_open_seconds"):
        load_settings(overrides={"engagement": {"fast_open_seconds": -1}}, environ={})


def test_a_longer_fast_open_setting_flags_a_later_open(con, home):
    delivered(home, 1)
    append(events_file(home), event("open", 1, event_id="four-seconds", ip=HOME, user_agent=IPHONE, at=at(4)))
    load_logs(con, load_settings(overrides={"home": str(home), "engagement": {"fast_open_seconds": 5}}, environ={}))
    assert flagged(con) == {"four-seconds": "fast_open"}


def test_older_clicks_are_judged_again_only_when_a_new_open_or_click_or_delivery_of_theirs_arrives(con, home):
    path = events_file(home)
    append(path, event("click", event_id="k1", subscriber_id=1, link=0, ip=HOME, user_agent="Mozilla/5.0 Barracuda"))
    assert aggregate(con, home)["events_machine"] == 1
    append(path, event("bounce", event_id="b1", subscriber_id=1, kind="soft"))
    assert aggregate(con, home)["events_machine"] == 0, "a bounce is no evidence about the click: not judged again"
    append(path, event("open", event_id="o1", subscriber_id=1, ip=HOME, user_agent=IPHONE))
    assert aggregate(con, home)["events_machine"] == 1, "a new open is: the click is judged again (and stays a scanner's)"
    assert flagged(con) == {"k1": "scanner:barracuda"}
