"""A small A/B campaign with known delivery, engagement and bounces, loaded and refreshed into the marts, for report tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from mailflow.settings import load_settings
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.aggregate.marts import refresh_marts
from mailflow.tasks.files.ledger import LedgerRecord, LedgerWriter, ledger_path
from mailflow.tasks.files.lifecycle import state_path, transitions_path
from mailflow.tasks.ingest.ingest import ingest_file
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.campaign import AbTest, CampaignSpec, Variant
from tests.support.events import append, event, events_file
from tests.support.inputs import write_csv

SENT_AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
SPEC = CampaignSpec(name="News", campaign_id="news", from_addr="a@example.com", subject="s", template="newsletter",
                    variants=(Variant("A"), Variant("B", subject="b")), ab=AbTest(test_fraction=1.0, holdout_fraction=0))
DOMAINS = ["example.com"] * 20 + ["example.org"] * 12 + ["gmail.com"] * 8  # 40 recipients


def at(hours: float) -> str:
    return (SENT_AT + timedelta(hours=hours)).isoformat()


def planned_campaign(con, home, tmp_path, spec: CampaignSpec = SPEC) -> dict[str, list[int]]:
    """Subscribers ingested and the campaign planned; its recipients' ids per variant."""
    ingest_file(con, write_csv(tmp_path / "s.csv", "email\n" + "".join(f"u{i}@{d}\n" for i, d in enumerate(DOMAINS))))
    plan(con, home, spec, 100)
    # The ledger, not recorded moves, decides this campaign's status (as in tests/test_aggregate.py)
    state_path(home, spec.campaign_id).unlink()
    transitions_path(home, spec.campaign_id).unlink()
    group: dict[str, list[int]] = {}
    for sid, variant in con.execute("SELECT subscriber_id, variant FROM campaign_recipients ORDER BY 1").fetchall():
        group.setdefault(variant, []).append(sid)
    return group


def engaged_campaign(con, home, tmp_path) -> dict[str, list[int]]:
    """The planned campaign with write_logs' ledger and events loaded, a2 flagged a machine, the marts refreshed."""
    group = planned_campaign(con, home, tmp_path)
    write_logs(home, group)
    load_logs(con, load_settings(overrides={"home": str(home)}, environ={}))
    con.execute("UPDATE deliveries SET sent_at = ?", [SENT_AT])
    con.execute("UPDATE events SET is_machine = true WHERE subscriber_id = ?", [group["A"][2]])  # as the load's flagging would
    refresh_marts(con, touched=False)
    return group


def write_logs(home, group: dict[str, list[int]]) -> None:
    """Every recipient delivered but B's last (a 550 user_unknown at send time); then, in the event log:
    A: a0 opens at hours 0 and 2 and clicks link 0 twice at hour 2; a1 opens at hour 1; a2 is a machine
    (opens at hour 0, clicks links 0 and 1 at once). B: b0 opens at hour 3 and unsubscribes; b1 soft-bounces
    later by bounce message (mailbox_full, from a DSN); b2 complains."""
    a, b = group["A"], group["B"]
    with LedgerWriter(ledger_path(home, "news", 0)) as w:
        for variant, sids in group.items():
            for sid in sids:
                provider = "gmail" if DOMAINS[sid - 1] == "gmail.com" else "other"  # ingest numbers rows in file order
                if sid == b[-1]:
                    w.append(LedgerRecord("news", sid, variant, 0, "bounced", 550, "5.1.1", "", 1, "hard", "user_unknown", provider))
                else:
                    w.append(LedgerRecord("news", sid, variant, 0, "delivered", 250, None, "", 1, provider=provider))
    url0, url1 = "https://shop.example/sale", "https://shop.example/about"
    append(events_file(home),
           event("open", a[0], at=at(0.1)), event("open", a[0], at=at(2.5)), event("open", a[1], at=at(1.2)),
           event("click", a[0], link=0, url=url0, at=at(2.6)), event("click", a[0], link=0, url=url0, at=at(2.7)),
           event("open", a[2], at=at(0.01)), event("click", a[2], link=0, url=url0, at=at(0.02)),
           event("click", a[2], link=1, url=url1, at=at(0.02)),
           event("open", b[0], variant="B", at=at(3.5)), event("unsubscribe", b[0], variant="B", at=at(3.6)),
           event("bounce", b[1], variant="B", at=at(5), kind="soft", reason="mailbox_full", status="4.2.2",
                 source="data/bounce-maildir/new/1.M2P3.vm"),  # the intake names the message file
           event("complaint", b[2], variant="B", at=at(6)))
