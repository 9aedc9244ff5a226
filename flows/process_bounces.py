"""Flow: read new mail from the bounce mailboxes (Maildir, IMAP) into bounce events and suppressions."""

from __future__ import annotations

from prefect import flow

from mailflow.settings import load_settings
from mailflow.tasks.bounces.tasks import fetch_bounces_task


@flow(name="process_bounces")
def process_bounces(config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    return fetch_bounces_task(settings)
