"""The engagement marts on synthetic deliveries and events with known answers; incremental refreshes equal a rebuild."""

from __future__ import annotations

import random
import re
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from mailflow.tasks.aggregate.marts import MART_KEYS, models, refresh_marts
from mailflow.tasks.core.warehouse import migrate
from tests.support.marts import T0, at, delivery, event, rows, subscriber, touched

AS_OF = at(days=1)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def campaign(con):
    """Campaign c1: variant A mailed 1-3, B mailed 4-7, with known outcomes and events (see each line)."""
    for sid, email, lists in [(1, "a@gmail.com", ("news",)), (2, "b@gmail.com", ()), (3, "c@yahoo.com", ("vip",)),
                              (4, "d@example.com", ("news",)), (5, "e@example.com", ()), (6, "f@example.org", ()),
                              (7, "g@example.com", ())]:
        subscriber(con, sid, email, lists, joined=at(days=-10))
    delivery(con, "c1", 1, "delivered", "A", provider="gmail")
    delivery(con, "c1", 2, "delivered", "A", provider="gmail")
    delivery(con, "c1", 3, "bounced", "A", kind="hard", provider="yahoo")
    delivery(con, "c1", 4, "delivered", "B")
    delivery(con, "c1", 5, "deferred", "B")
    delivery(con, "c1", 6, "bounced", "B", kind="soft")
    delivery(con, "c1", 7, "delivered", "B")
    event(con, "o1", "c1", 1, "open", at(0.5))  # a person, twice, then a click
    event(con, "o2", "c1", 1, "open", at(2.2))
    event(con, "k1", "c1", 1, "click", at(2.5), link=0, url="https://shop.example/sale")
    event(con, "o3", "c1", 2, "open", at(0.01), machine=True)  # a privacy proxy's open and a scanner's click
    event(con, "k2", "c1", 2, "click", at(0.01), machine=True, link=0, url="https://shop.example/sale")
    event(con, "b3", "c1", 3, "bounce", at(1), kind="hard")  # the send-time hard bounce, again from the mailbox
    event(con, "o4", "c1", 4, "open", at(5.5), variant="B")
    event(con, "u4", "c1", 4, "unsubscribe", at(5.6))
    event(con, "c4", "c1", 4, "complaint", at(5.7))
    event(con, "b6", "c1", 6, "bounce", at(3), kind="hard")  # soft at send time, hard later: hard, once
    event(con, "b7", "c1", 7, "bounce", at(4), kind="soft")  # delivered, then a soft bounce came back
    event(con, "l2", None, 2, "list_unsubscribe", at(6), data={"lists": ["news"]})
    con.execute("INSERT INTO campaigns (campaign_id, name, status, spec, audience_size, chunk_count) "
                "VALUES ('c1', 'spring-sale', 'sent', '{}', 7, 1)")
    con.execute("INSERT INTO campaign_recipients SELECT campaign_id, subscriber_id, variant, 0 FROM deliveries")
    refresh_marts(con, False, as_of=AS_OF)
    return con


def readme_section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("## Engagement tables and views")
    return text[start: text.index("\n## ", start + 1)]


def test_every_view_is_in_the_readme_with_a_question_and_a_query_that_runs(campaign):
    views = {m.group(1) for path in (ROOT / "sql" / "views").glob("*.sql")
             for m in re.finditer(r"CREATE OR REPLACE VIEW (\w+)", path.read_text(encoding="utf-8"))}
    section = readme_section()
    documented = {name: (question, query) for name, question, query in
                  re.findall(r"#### `(\w+)`\n(.+\?)\n```sql\n(.+?)\n```", section)}
    assert views == set(documented) and "campaign_overview" in views
    examples = re.findall(r"```sql\n(.+?)\n```", section, re.DOTALL)
    assert len(examples) == len(views) + 2
    for query in examples:
        assert campaign.execute(query).fetchall(), query  # each finds something in the synthetic campaign


def test_engagement_by_variant_counts_each_outcome_once_and_keeps_machines_out_of_human_columns(campaign):
    found = {r["variant"]: r for r in rows(campaign, "SELECT * FROM engagement_by_variant WHERE campaign_id = 'c1'")}
    assert set(found) == {"A", "B", "*"}
    a, b, total = found["A"], found["B"], found["*"]
    assert {k: a[k] for k in ("sent", "delivered", "deferred", "hard_bounced", "soft_bounced", "complaints")} == \
        {"sent": 3, "delivered": 2, "deferred": 0, "hard_bounced": 1, "soft_bounced": 0, "complaints": 0}
    assert (a["unique_opens"], a["total_opens"], a["human_unique_opens"], a["human_total_opens"]) == (2, 3, 1, 2)
    assert (a["unique_clicks"], a["total_clicks"], a["human_unique_clicks"], a["human_total_clicks"]) == (2, 2, 1, 1)
    assert (a["open_rate"], a["human_open_rate"], a["click_to_open"], a["human_click_to_open"]) == (1.0, 0.5, 1.0, 1.0)
    assert a["bounce_rate"] == pytest.approx(1 / 3) and a["unsubscribe_rate"] == 0
    assert {k: b[k] for k in ("sent", "delivered", "deferred", "hard_bounced", "soft_bounced", "complaints",
                              "unsubscribes", "unique_opens", "unique_clicks")} == \
        {"sent": 4, "delivered": 2, "deferred": 1, "hard_bounced": 1, "soft_bounced": 1, "complaints": 1,
         "unsubscribes": 1, "unique_opens": 1, "unique_clicks": 0}
    assert (b["complaint_rate"], b["unsubscribe_rate"], b["bounce_rate"], b["click_to_open"]) == (0.5, 0.5, 0.5, 0.0)
    assert {k: total[k] for k in ("sent", "delivered", "hard_bounced", "soft_bounced", "unique_opens",
                                  "human_unique_opens", "total_clicks")} == \
        {"sent": 7, "delivered": 4, "hard_bounced": 2, "soft_bounced": 1, "unique_opens": 3, "human_unique_opens": 2,
         "total_clicks": 2}


def test_no_rate_divides_by_nothing(con):
    subscriber(con, 1, "a@example.com")
    delivery(con, "c1", 1, "deferred")
    refresh_marts(con, False, as_of=AS_OF)
    [row] = rows(con, "SELECT * FROM engagement_by_variant WHERE variant = '*'")
    assert row["sent"] == 1 and row["open_rate"] is None and row["click_to_open"] is None and row["bounce_rate"] == 0


def test_a_recipients_events_count_under_its_delivery_variant_else_the_one_they_name(con):
    subscriber(con, 1, "a@example.com")
    subscriber(con, 2, "b@example.com")
    delivery(con, "c1", 1, "delivered", "A")
    event(con, "o1", "c1", 1, "open", at(1), variant="B")  # the delivery says A
    event(con, "o2", "c1", 2, "open", at(1), variant="B")  # no delivery loaded yet
    event(con, "o3", "c1", None, "open", at(1))  # no recipient at all: counted, never unique
    refresh_marts(con, False, as_of=AS_OF)
    found = {r["variant"]: (r["sent"], r["unique_opens"], r["total_opens"])
             for r in rows(con, "SELECT * FROM engagement_by_variant")}
    assert found == {"A": (1, 1, 1), "B": (0, 1, 1), "(unknown)": (0, 0, 1), "*": (1, 2, 3)}


def test_engagement_by_provider_and_domain(campaign):
    providers = {r["provider"]: (r["sent"], r["delivered"], r["human_unique_opens"])
                 for r in rows(campaign, "SELECT * FROM engagement_by_provider")}
    assert providers == {"gmail": (2, 2, 1), "yahoo": (1, 0, 0), "other": (4, 2, 1)}
    domains = {r["domain"]: (r["sent"], r["hard_bounced"]) for r in rows(campaign, "SELECT * FROM engagement_by_domain")}
    assert domains == {"gmail.com": (2, 0), "yahoo.com": (1, 1), "example.com": (3, 0), "example.org": (1, 1)}


def test_only_the_largest_domains_are_named(con):
    for sid in range(1, 31):  # 29 domains, the last with 2 recipients
        subscriber(con, sid, f"u{sid}@d{min(sid, 29):02d}.example")
        delivery(con, "c1", sid, "delivered")
    refresh_marts(con, False, as_of=AS_OF)
    domains = dict(con.execute("SELECT domain, sent FROM engagement_by_domain").fetchall())
    assert len(domains) == 26 and domains["d29.example"] == 2 and domains["(other)"] == 4


def test_engagement_by_hour_counts_from_each_recipients_delivery(campaign):
    found = {(r["variant"], r["hours_since_send"]): (r["opens"], r["clicks"], r["human_opens"], r["human_clicks"])
             for r in rows(campaign, "SELECT * FROM engagement_by_hour")}
    assert found == {("A", 0): (2, 1, 1, 0), ("A", 2): (1, 1, 1, 1), ("B", 5): (1, 0, 1, 0),
                     ("*", 0): (2, 1, 1, 0), ("*", 2): (1, 1, 1, 1), ("*", 5): (1, 0, 1, 0)}


def test_engagement_by_link_counts_clicks_and_people(campaign):
    event(campaign, "k9", "c1", 4, "click", at(6), url="https://shop.example/templated")  # a templated link: no index
    refresh_marts(campaign, False, as_of=AS_OF)
    found = {r["link"]: r for r in rows(campaign, "SELECT * FROM engagement_by_link")}
    assert (found[0]["url"], found[0]["clicks"], found[0]["unique_clicks"], found[0]["human_clicks"],
            found[0]["human_unique_clicks"]) == ("https://shop.example/sale", 2, 2, 1, 1)
    assert (found[None]["url"], found[None]["clicks"]) == ("https://shop.example/templated", 1)


def test_subscriber_engagement(campaign):
    delivery(campaign, "c0", 1, "delivered", sent_at=at(days=-100))  # an older campaign, opened then
    event(campaign, "o0", "c0", 1, "open", at(days=-99))
    event(campaign, "b0", None, 3, "bounce", at(days=-40), kind="soft")  # untraced, outside 30 days
    refresh_marts(campaign, False, as_of=AS_OF)
    found = {r["subscriber_id"]: r for r in rows(campaign, "SELECT * FROM subscriber_engagement")}
    assert set(found) == {1, 2, 3, 4, 5, 6, 7}
    one = found[1]
    assert (one["last_open_at"], one["last_click_at"], one["last_engaged_at"]) == (at(2.2), at(2.5), at(2.5))
    assert (one["opens_90d"], one["human_opens_90d"], one["clicks_90d"], one["human_clicks_90d"]) == (2, 2, 1, 1)
    assert (one["campaigns_received_90d"], one["campaigns_received_180d"], one["engagement_score"]) == (1, 2, 100)
    two = found[2]  # only machines opened and clicked
    assert (two["opens_90d"], two["human_opens_90d"], two["last_human_open_at"], two["engagement_score"]) == (1, 0, None, 0)
    three = found[3]  # one bounce of c1 from both paths, and an old untraced one
    assert (three["bounces_30d"], three["last_bounce_at"], three["engagement_score"]) == (1, at(1), None)
    assert found[4]["engagement_score"] == 33 and found[5]["last_sent_at"] == T0


def test_list_activity_per_list_and_day(campaign):
    found = {(r["list_name"], str(r["day"])): (r["joined"], r["unsubscribed"], r["bounced"], r["complained"], r["members"])
             for r in rows(campaign, "SELECT * FROM list_activity")}
    assert found == {("news", "2026-10-23"): (2, 0, 0, 0, 2), ("vip", "2026-10-23"): (1, 0, 0, 0, 1),
                     ("news", "2026-11-02"): (0, 2, 0, 1, 2),  # 4 unsubscribed and complained; 2 left the list
                     ("vip", "2026-11-02"): (0, 0, 1, 0, 1)}  # 3's bounce, at send time and from the mailbox


def memory_warehouse() -> duckdb.DuckDBPyConnection:
    """In memory: many small writes, none of them waiting for the disk."""
    con = duckdb.connect()
    migrate(con)
    return con


def test_each_model_gives_exactly_its_marts_columns_and_types():
    con = memory_warehouse()
    ddl = {name: con.sql(f"SELECT * FROM {name}") for name in MART_KEYS}
    refresh_marts(con, False, as_of=AS_OF)  # on an empty warehouse: every model prepares and runs
    for name, relation in ddl.items():
        after = con.sql(f"SELECT * FROM {name}")
        assert (after.columns, [str(t) for t in after.types]) == (relation.columns, [str(t) for t in relation.types]), name
    assert [m.name for m in models() if m.layer == "marts"] == sorted(MART_KEYS)


def test_a_refresh_without_the_loads_tables_or_with_changed_models_rebuilds(campaign, monkeypatch):
    touched(campaign)
    assert refresh_marts(campaign, True, as_of=AS_OF)["marts_rebuilt"] is False
    assert refresh_marts(campaign, False, as_of=AS_OF)["marts_rebuilt"] is True
    campaign.execute("UPDATE mart_refreshes SET models_sha = 'older'")
    assert refresh_marts(campaign, True, as_of=AS_OF)["marts_rebuilt"] is True
    campaign.execute("DROP TABLE touched_campaigns")
    assert refresh_marts(campaign, True, as_of=AS_OF)["marts_rebuilt"] is True


# Each mart's key: the order two snapshots are compared in.
MART_ORDER = {"engagement_by_variant": "campaign_id, variant", "engagement_by_provider": "campaign_id, provider",
              "engagement_by_domain": "campaign_id, domain", "engagement_by_hour": "campaign_id, variant, hours_since_send",
              "engagement_by_link": "campaign_id, link, url", "subscriber_engagement": "subscriber_id",
              "list_activity": "list_name, day"}


def snapshot(con) -> dict[str, list[tuple]]:
    return {name: con.execute(f"SELECT * FROM {name} ORDER BY {order}").fetchall() for name, order in MART_ORDER.items()}


def add_batch(con, rng: random.Random, batch: int, now) -> tuple[set[str], set[int]]:
    """Some new or changed deliveries and new events, as one load would bring: (campaigns, subscribers) touched."""
    campaigns, subscribers = set(), set()
    for n in range(rng.randint(5, 25)):
        cid, sid = f"c{rng.randint(1, 4)}", rng.randint(1, 40)
        sent = now - timedelta(days=rng.choice([0, 1, 20, 45, 100, 170]))
        if rng.random() < 0.4:
            status = rng.choice(["delivered", "delivered", "deferred", "bounced", "suppressed"])
            delivery(con, cid, sid, status, rng.choice("AB"), kind=rng.choice(["hard", "soft", None]),
                     provider=rng.choice(["gmail", "other"]), sent_at=sent)
        else:
            kind = rng.choice(["open", "open", "click", "bounce", "unsubscribe", "complaint"])
            event(con, f"e{batch}-{n}", cid if rng.random() < 0.9 else None, sid, kind, sent + timedelta(hours=rng.randint(0, 50)),
                  machine=rng.random() < 0.3, kind=rng.choice(["hard", "soft"]) if kind == "bounce" else None,
                  link=rng.randint(0, 2) if kind == "click" else None, variant=rng.choice("AB"))
            campaigns.add(cid)
        campaigns.add(cid)
        subscribers.add(sid)
    return campaigns, subscribers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_incremental_refreshes_equal_a_full_rebuild(seed):
    """Batches of new data, each refreshed for what it touched, while time moves on (days, then months: events
    leave subscriber_engagement's windows untouched); after each, a rebuild gives the very same marts."""
    con = memory_warehouse()
    rng = random.Random(seed)
    for sid in range(1, 41):
        subscriber(con, sid, f"u{sid}@{rng.choice(['gmail.com', 'example.com', 'example.org'])}",
                   tuple(rng.sample(["news", "vip"], rng.randint(0, 2))), joined=at(days=-rng.randint(0, 30)))
    now = T0
    refresh_marts(con, False, as_of=now)
    for batch in range(6):
        now += timedelta(days=rng.choice([0.5, 3, 40, 95]))
        campaigns, subscribers = add_batch(con, rng, batch, now)
        touched(con, campaigns, subscribers)
        assert refresh_marts(con, True, as_of=now)["marts_rebuilt"] is False
        incremental = snapshot(con)
        refresh_marts(con, False, as_of=now)
        assert snapshot(con) == incremental, f"batch {batch}"
        assert any(incremental.values())
