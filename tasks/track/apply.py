"""Subscription events (opt-ins, list unsubscribes, preferences) applied to the warehouse's lists: a stub the pages part replaces."""

from __future__ import annotations

import duckdb


def apply_subscription_events(con: duckdb.DuckDBPyConnection) -> None:
    """Apply the rows of TEMP table `new_events` (this aggregate's new events) to subscribers and lists.

    Called inside the aggregate's transaction after the events are inserted; does nothing yet.
    """
