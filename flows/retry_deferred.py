"""Flow: resend deferred recipients whose back-off has elapsed; give up on those deferred too long."""

from __future__ import annotations

import os

from prefect import flow, unmapped
from prefect.task_runners import ProcessPoolTaskRunner

from mailflow.settings import load_settings
from tasks.report import sum_counts
from tasks.retry import deferred_chunks_task
from tasks.send import send_chunk_task


@flow(name="retry_deferred", task_runner=ProcessPoolTaskRunner(max_workers=os.cpu_count() or 2))
def retry_deferred(campaign_id: str | None = None, config: str | None = None, overrides: dict | None = None) -> dict:
    settings = load_settings(config, overrides)
    work = deferred_chunks_task(settings, campaign_id)
    futures = send_chunk_task.map(unmapped(settings), [spec for spec, _ in work], [chunk for _, chunk in work],
                                  retry=unmapped(True))
    return sum_counts(f.result() for f in futures) | {"chunks": len(work)}
