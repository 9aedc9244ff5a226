"""Flow: send a planned campaign chunk by chunk, resuming from the ledger if run again."""

from __future__ import annotations

import os

from prefect import flow, unmapped
from prefect.task_runners import ProcessPoolTaskRunner

from mailflow.settings import load_settings
from flows.progress import follow_chunks
from tasks.report import sum_counts
from tasks.send import load_plan_task, preflight_task, send_chunk_task


# Composing (render, MIME, DKIM) is CPU work: one process per core, each with its own SMTP pool.
@flow(name="send_campaign", task_runner=ProcessPoolTaskRunner(max_workers=os.cpu_count() or 2))
def send_campaign(campaign_id: str, config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    spec, chunks = load_plan_task(settings, campaign_id)
    if chunks:
        preflight_task(settings, spec, chunks[0])
    futures = send_chunk_task.map(unmapped(settings), unmapped(spec), chunks)
    return sum_counts(follow_chunks(settings.home, campaign_id, futures))
