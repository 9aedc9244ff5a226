"""Flow: send a planned campaign's due chunks, resuming from the ledger if run again, and move its lifecycle."""

from __future__ import annotations

import os

from prefect import flow
from prefect.task_runners import ProcessPoolTaskRunner

from mailflow import interrupt
from mailflow.errors import Interrupted
from mailflow.flows.progress import follow_chunks
from mailflow.flows.workers import chunk_sender
from mailflow.settings import load_settings
from mailflow.tasks.aggregate.report import sum_counts
from mailflow.tasks.files.control import held, stop_watch
from mailflow.tasks.preflight.tasks import preflight_checks_task
from mailflow.tasks.send.tasks import begin_send_task, finish_send_task, load_plan_task, preflight_task, send_chunk_task

WORKERS = os.cpu_count() or 2


# Composing (render, MIME, DKIM) is CPU work: one process per core, each with its own SMTP pool.
# In the workers a signal only stops taking recipients (the command itself decides when to exit).
@flow(name="send_campaign", task_runner=ProcessPoolTaskRunner(max_workers=WORKERS, initializer=interrupt.stop_on_signal))
def send_campaign(campaign_id: str, config: str | None = None, overrides: dict | None = None,
                  by: str = "flow send_campaign", preflight: bool = False, distribute: bool = False) -> dict:
    interrupt.rearm()  # Prefect's engine has just put its own SIGTERM handler in place
    settings = load_settings(config, overrides)
    spec, chunks = load_plan_task(settings, campaign_id)
    plan = begin_send_task(settings, campaign_id, chunks, by)  # refuses a paused or cancelled campaign
    stop = stop_watch(settings.home, [campaign_id])
    checks = []
    if plan.due and not stop():
        if preflight:  # the deliverability checks (tasks/preflight): a FAIL aborts the campaign here
            checks = preflight_checks_task(settings, campaign_id, by)
        preflight_task(settings, spec, plan.due, by)
    # `distribute`: each chunk a flow run of the `send-chunk` deployment, for the work pool's workers (flows/workers.py)
    with chunk_sender(settings.home, campaign_id, config, overrides, distribute,
                      lambda chunk: send_chunk_task.submit(settings, spec, chunk), WORKERS) as (submit, window):
        counts = sum_counts(follow_chunks(settings.home, campaign_id, submit, plan.due, window, stop))
    if stop() and (interrupt.requested() or not held(settings.home, campaign_id)):
        raise Interrupted(f"the send of campaign {campaign_id!r} was interrupted")
    # a pause or cancel returns here, recipients pending
    return finish_send_task(settings, campaign_id, counts, by) | ({"preflight": checks} if checks else {})
