"""A small warehouse with a history: subscribers of known ages in lists, deliveries and engagement events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb

NOW = datetime.now(UTC)


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def add_subscriber(con: duckdb.DuckDBPyConnection, subscriber_id: int, email: str, age_days: float,
                   lists: tuple[str, ...] = (), status: str = "active", attributes: str = "{}") -> None:
    con.execute("INSERT INTO subscribers (subscriber_id, email, email_original, status, attributes, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)", [subscriber_id, email, email, status, attributes, days_ago(age_days)])
    for name in lists:
        con.execute("INSERT INTO lists (name) SELECT ? WHERE ? NOT IN (SELECT name FROM lists)", [name, name])
        con.execute("INSERT INTO list_memberships (list_id, subscriber_id) SELECT list_id, ? FROM lists WHERE name = ?",
                    [subscriber_id, name])


def add_event(con: duckdb.DuckDBPyConnection, event_id: str, subscriber_id: int | None, kind: str, age_days: float,
              campaign_id: str | None = "c1", is_machine: bool = False) -> None:
    con.execute("INSERT INTO events (event_id, campaign_id, subscriber_id, variant, type, occurred_at, is_machine) "
                "VALUES (?, ?, ?, 'A', ?, ?, ?)", [event_id, campaign_id, subscriber_id, kind, days_ago(age_days), is_machine])


def add_delivery(con: duckdb.DuckDBPyConnection, campaign_id: str, subscriber_id: int, status: str, age_days: float) -> None:
    con.execute("INSERT INTO deliveries (campaign_id, subscriber_id, variant, chunk_id, status, attempts, sent_at) "
                "VALUES (?, ?, 'A', 0, ?, 1, ?)", [campaign_id, subscriber_id, status, days_ago(age_days)])
