"""Synthetic deliveries and events for the engagement marts, and the load's TEMP tables of what it touched."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # when the synthetic campaigns were sent


def at(hours: float = 0.0, days: float = 0.0) -> datetime:
    return T0 + timedelta(hours=hours, days=days)


def touched(con, campaigns: Iterable[str] = (), subscribers: Iterable[int] = ()) -> None:
    """(Re)create TEMP touched_campaigns(campaign_id) and touched_subscribers(subscriber_id) holding these."""
    con.execute("CREATE OR REPLACE TEMP TABLE touched_campaigns (campaign_id VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE touched_subscribers (subscriber_id BIGINT)")
    for campaign in campaigns:
        con.execute("INSERT INTO touched_campaigns VALUES (?)", [campaign])
    for subscriber in subscribers:
        con.execute("INSERT INTO touched_subscribers VALUES (?)", [subscriber])


def subscriber(con, subscriber_id: int, email: str, lists: tuple[str, ...] = (), joined: datetime = T0) -> None:
    con.execute("INSERT INTO subscribers (subscriber_id, email, email_original) VALUES (?, ?, ?)",
                [subscriber_id, email, email])
    for name in lists:
        con.execute("INSERT INTO lists (name) SELECT ? WHERE ? NOT IN (SELECT name FROM lists)", [name, name])
        con.execute("INSERT INTO list_memberships (list_id, subscriber_id, created_at) "
                    "SELECT list_id, ?, ? FROM lists WHERE name = ?", [subscriber_id, joined, name])


def delivery(con, campaign_id: str, subscriber_id: int, status: str, variant: str = "A", *, kind: str | None = None,
             provider: str = "other", sent_at: datetime = T0) -> None:
    """A recipient's final outcome, replacing any earlier one (as the load's upsert does)."""
    con.execute("DELETE FROM deliveries WHERE campaign_id = ? AND subscriber_id = ?", [campaign_id, subscriber_id])
    con.execute("INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at, "
                "kind, provider) VALUES (?, ?, ?, 0, ?, 1, ?, ?, ?)",
                [campaign_id, subscriber_id, variant, status, sent_at, kind, provider])


def event(con, event_id: str, campaign_id: str | None, subscriber_id: int | None, type_: str, occurred_at: datetime,
          *, variant: str | None = None, machine: bool = False, kind: str | None = None, link: int | None = None,
          url: str | None = None, data: dict | None = None) -> None:
    con.execute("INSERT INTO events (event_id, campaign_id, subscriber_id, variant, type, link, url, occurred_at, "
                "is_machine, kind, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [event_id, campaign_id, subscriber_id, variant, type_, link, url, occurred_at, machine, kind,
                 json.dumps(data or {})])


def rows(con, sql: str, params: list | None = None) -> list[dict]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
