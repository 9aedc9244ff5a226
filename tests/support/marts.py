"""The load's TEMP tables of touched campaigns and subscribers, as the aggregate leaves them before refresh_marts."""

from __future__ import annotations

from collections.abc import Iterable


def touched(con, campaigns: Iterable[str] = (), subscribers: Iterable[int] = ()) -> None:
    """(Re)create TEMP touched_campaigns(campaign_id) and touched_subscribers(subscriber_id) holding these."""
    con.execute("CREATE OR REPLACE TEMP TABLE touched_campaigns (campaign_id VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE touched_subscribers (subscriber_id BIGINT)")
    for campaign in campaigns:
        con.execute("INSERT INTO touched_campaigns VALUES (?)", [campaign])
    for subscriber in subscribers:
        con.execute("INSERT INTO touched_subscribers VALUES (?)", [subscriber])
