"""Flow: resend deferred recipients whose back-off has elapsed; give up on those deferred too long."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ProcessPoolTaskRunner

from mailflow import interrupt
from mailflow.errors import Interrupted
from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.flows.progress import in_window
from mailflow.flows.send_campaign import WORKERS
from mailflow.settings import load_settings
from mailflow.tasks.aggregate.report import sum_counts
from mailflow.tasks.core.run_tables import retry_rows
from mailflow.tasks.files.control import stop_watch
from mailflow.tasks.send.tasks import chunk_failed, deferred_chunks_task, finish_send_task, send_chunk_task


@flow(name="retry_deferred", task_runner=ProcessPoolTaskRunner(max_workers=WORKERS, initializer=interrupt.stop_on_signal))
def retry_deferred(campaign_id: str | None = None, config: str | None = None, overrides: dict | None = None,
                   by: str = "flow retry_deferred") -> dict:
    interrupt.rearm()  # Prefect's engine has just put its own SIGTERM handler in place
    settings = load_settings(config, overrides)
    work = deferred_chunks_task(settings, campaign_id)
    campaigns = sorted({spec.campaign_id for spec, _ in work})
    stop = stop_watch(settings.home, campaigns)
    progress = RunProgress("retry_deferred", len(work), "chunks with deferred recipients retried")
    counts = sum_counts(progress.follow(in_window(lambda job: send_chunk_task.submit(settings, *job, retry=True), work, WORKERS, stop,
                                  failed=lambda job, exc: chunk_failed(job[0].campaign_id, job[1], exc))))
    if stop():
        raise Interrupted("the retry was interrupted")
    states = [finish_send_task(settings, cid, {}, by) for cid in campaigns]  # the last deferral settled: `sent`
    result = counts | {"chunks": len(work), "campaigns": {s["campaign_id"]: s["state"] for s in states}}
    result_table("retry_deferred", retry_rows(result), "Outcomes of the retried recipients")
    return result
