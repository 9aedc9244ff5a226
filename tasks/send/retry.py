"""Which chunks hold deferred recipients: the work of `mailflow retry` (the retry_deferred flow)."""

from __future__ import annotations

from mailflow.settings import Settings
from mailflow.tasks.files.ledger import LEDGER_DIR, ledger_state
from mailflow.tasks.files.lifecycle import CANCELLED, PAUSED, state_of
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import load_plan
from mailflow.tasks.send.schedule import PlannedChunk


def deferred_chunks(settings: Settings, campaign_id: str | None = None) -> list[tuple[CampaignSpec, PlannedChunk]]:
    """(campaign, chunk) for every chunk whose ledger still has a deferred recipient, in
    campaigns neither paused nor cancelled.

    Whether each one is due, or has waited too long and is given up, the chunk's send
    decides under the ledger's lock; this only finds where to look. It reads ledgers,
    never the warehouse, so retries run while other flows hold it.
    """
    root = settings.home / LEDGER_DIR
    campaigns = [campaign_id] if campaign_id else sorted(p.name for p in root.glob("*") if p.is_dir())
    work = []
    for cid in campaigns:
        if state_of(settings.home, cid) in (PAUSED, CANCELLED):
            continue
        ledgers = sorted((root / cid).glob("chunk-*.ndjson"))
        pending = {p.stem for p in ledgers if any(s.status == "deferred" for s in ledger_state(p).values())}
        if not pending:
            continue
        spec, chunks = load_plan(settings, cid)
        work.extend((spec, chunk) for chunk in chunks if chunk.path.stem in pending)
    return work
