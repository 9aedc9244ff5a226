"""Which chunks hold deferred recipients: the work of `mailflow retry` (the retry_deferred flow)."""

from __future__ import annotations

from pathlib import Path

from mailflow.settings import Settings
from mailflow.tasks.files.ledger import LEDGER_DIR, ledger_state
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import load_plan


def deferred_chunks(settings: Settings, campaign_id: str | None = None) -> list[tuple[CampaignSpec, Path]]:
    """(campaign, chunk file) for every chunk whose ledger still has a deferred recipient.

    Whether each one is due, or has waited too long and is given up, the chunk's send
    decides under the ledger's lock; this only finds where to look. It reads ledgers,
    never the warehouse, so retries run while other flows hold it.
    """
    root = settings.home / LEDGER_DIR
    campaigns = [campaign_id] if campaign_id else sorted(p.name for p in root.glob("*") if p.is_dir())
    work = []
    for cid in campaigns:
        ledgers = sorted((root / cid).glob("chunk-*.ndjson"))
        pending = {p.stem for p in ledgers if any(s.status == "deferred" for s in ledger_state(p).values())}
        if not pending:
            continue
        spec, chunks = load_plan(settings, cid)
        work.extend((spec, chunk) for chunk in chunks if chunk.stem in pending)
    return work
