"""A/B tests in a warehouse: a planned campaign whose test was 'sent' and engaged with, written straight into the tables."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb

from mailflow.tasks.files.lifecycle import record_transition
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.campaign import CampaignSpec
from tests.support.planning import add_subscribers, campaign

VARIANTS = """variants:
  - {name: A, weight: 1}
  - {name: B, weight: 1, subject: "B"}
"""


def ab_campaign(con: duckdb.DuckDBPyConnection, home, tmp_path, ab: str | None, recipients: int = 3000,
                name: str = "Spring Sale!", variants: str = VARIANTS) -> CampaignSpec:
    """A planned campaign with an A/B test over `recipients` new subscribers; `ab` is the `ab:` mapping."""
    start = con.execute("SELECT count(*) FROM subscribers").fetchall()[0][0]
    add_subscribers(con, [f"{name[:3].lower()}{i}@example.com" for i in range(start, start + recipients)])
    spec = campaign(tmp_path, name=name, extra=variants + (f"ab: {ab}\n" if ab else ""))
    plan(con, home, spec, 500)
    return spec


def group(con: duckdb.DuckDBPyConnection, campaign_id: str, variant: str) -> list[int]:
    """The recipients planned into `variant` (or holdout, remainder), by subscriber id."""
    return [r[0] for r in con.execute("SELECT subscriber_id FROM campaign_recipients WHERE campaign_id = $c AND "
                                      "variant = $v ORDER BY subscriber_id", {"c": campaign_id, "v": variant}).fetchall()]


def deliver(con: duckdb.DuckDBPyConnection, campaign_id: str, variant: str, ids: list[int], status: str = "delivered",
            as_variant: str | None = None, at: str = "2026-12-01T09:00:00+00:00") -> None:
    """Deliveries as the aggregate loads them from the ledgers (the remainder's under the winner's name)."""
    con.execute("INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at) "
                "SELECT $c, i, $v, 0, $s, 1, $at FROM unnest($ids::BIGINT[]) AS t(i)",
                {"c": campaign_id, "v": as_variant or variant, "s": status, "at": at, "ids": ids})


def engage(con: duckdb.DuckDBPyConnection, campaign_id: str | None, ids: list[int], type_: str = "click",
           machine: bool = False, at: str = "2026-12-01T10:00:00+00:00") -> None:
    con.execute("INSERT INTO events (event_id, campaign_id, subscriber_id, type, occurred_at, is_machine) "
                "SELECT gen_random_uuid()::VARCHAR, $c, i, $t, $at, $m FROM unnest($ids::BIGINT[]) AS t(i)",
                {"c": campaign_id, "t": type_, "at": at, "m": machine, "ids": ids})


def mark_test_sent(home, campaign_id: str) -> datetime:
    """The test's chunks all sent: the lifecycle moves a send makes. When it became `sent`."""
    record_transition(home, campaign_id, "sending", "test", "chunks due")
    move = record_transition(home, campaign_id, "sent", "test", "every test recipient has an outcome")
    return datetime.fromisoformat(move.at).astimezone(UTC)


def sent_ab_test(con: duckdb.DuckDBPyConnection, home, tmp_path, ab: str, clicks: tuple[float, float] = (0.05, 0.12),
                 **kw) -> tuple[CampaignSpec, datetime]:
    """A campaign whose test variants A and B were all delivered, with human clicks at the given shares;
    the spec and when its test finished sending."""
    spec = ab_campaign(con, home, tmp_path, ab, **kw)
    for variant, share in zip("AB", clicks, strict=True):
        ids = group(con, spec.campaign_id, variant)
        deliver(con, spec.campaign_id, variant, ids)
        engage(con, spec.campaign_id, ids[: int(len(ids) * share)])
    return spec, mark_test_sent(home, spec.campaign_id)
