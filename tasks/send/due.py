"""Which campaigns have chunks due that no send has taken yet: the work of `mailflow send --due` (flow send_due)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.tasks.files.ledger import ledger_state
from mailflow.tasks.files.lifecycle import PLANNED, SCHEDULED, SENDING, SENT, campaign_ids, state_of
from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.send.schedule import PlannedChunk, chunk_ledger, planned_chunks, rows_of, schedule

SENDABLE = (PLANNED, SCHEDULED, SENDING, SENT)  # not paused, cancelled, aborted (a person decides) or a draft


def due_campaigns(home: Path, now: datetime) -> list[str]:
    """Campaigns not paused or cancelled with a due chunk that has recipients no send has
    logged (or logged as deferred before any server saw them). Reads manifests and ledgers only."""
    found = []
    for campaign_id in campaign_ids(home):
        if state_of(home, campaign_id) not in SENDABLE:
            continue
        try:
            manifest = read_manifest(home, campaign_id)
        except MailflowError:  # a state but no plan (a draft being planned): nothing to send
            continue
        chunks = schedule(planned_chunks(home, campaign_id, manifest), now).due
        if any(has_work(home, campaign_id, chunk) for chunk in chunks):
            found.append(campaign_id)
    return found


def has_work(home: Path, campaign_id: str, chunk: PlannedChunk) -> bool:
    path = chunk_ledger(home, campaign_id, chunk)
    if not path.exists():
        return True
    states = ledger_state(path)
    return len(states) < rows_of(chunk) or any(s.status == "deferred" and s.unsent for s in states.values())
