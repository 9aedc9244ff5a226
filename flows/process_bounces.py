"""Flow: read new mail from the bounce mailboxes (Maildir, IMAP) into bounce events and suppressions."""

from __future__ import annotations

from prefect import flow

from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.settings import load_settings
from mailflow.tasks.bounces.tasks import fetch_bounces_task
from mailflow.tasks.core.run_tables import bounce_rows


@flow(name="process_bounces")
def process_bounces(config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    progress = RunProgress("process_bounces", 1, "mailbox reads")
    result = fetch_bounces_task(settings)
    progress.step(f"{result['fetched']} messages")
    result_table("process_bounces", bounce_rows(result), "Bounce mail read: kinds, suppressions")
    return result
