"""Subscription events into the warehouse (opt-ins, list unsubscribes, preferences), and their state published back."""

from __future__ import annotations

from pathlib import Path

import duckdb

from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.files.preferences import write_preferences

# In this order: subscribers exist before their consents and list choices refer to them
_STEPS = ("stage_optins", "insert_optin_subscribers", "reactivate_optin_subscribers", "lift_optin_suppressions",
          "insert_consents", "stage_list_wishes", "ensure_wished_lists", "add_wished_memberships",
          "remove_unwished_memberships", "set_frequencies", "drop_staged_optins", "drop_staged_list_wishes")


def apply_subscription_events(con: duckdb.DuckDBPyConnection) -> None:
    """Fold the TEMP table `new_events` (this aggregate run's new rows of `events`, with their extra
    fields in `data`) into subscribers, list_memberships and consents; runs inside the aggregate's
    transaction, so a failure leaves nothing half applied.

    - optin_confirmed (data: email, list, first_name, consented_at, form_version, source): a new
      address becomes an active subscriber; an unsubscribed one is active again (its unsubscribe
      suppression lifted); either joins the list; a consent row records it.
    - list_unsubscribe (data: lists): the subscriber leaves those lists, and stays subscribed.
    - preferences (data: offered, lists, frequency): each offered list is joined if ticked and left
      if not; frequency becomes the subscriber's attribute `frequency`.
    The latest event per subscriber and list decides.
    """
    for step in _STEPS:
        con.execute(q(step))


def publish_preferences(con: duckdb.DuckDBPyConnection, home: Path) -> Path:
    """Write `published/preferences.parquet` for the preference centre (call it after the aggregate's
    transaction, as the suppression snapshot is written): every subscriber's lists and frequency."""
    # A cursor of its own: the caller's connection may hold an unfinished result (DuckDB then refuses more work on it)
    with con.cursor() as cursor:
        return write_preferences(home, cursor.sql(q("subscriber_preferences")).pl())
