"""Flow: send one chunk of a planned campaign, the unit a Prefect worker runs when a send is spread over workers."""

from __future__ import annotations

from prefect import flow

from mailflow import interrupt
from mailflow.settings import load_settings
from mailflow.tasks.send.spread import chunk_named
from mailflow.tasks.send.tasks import load_plan_task, send_chunk_task


# One flow run per chunk (deployment `send-chunk`): each worker runs it in a process of its own, so
# chunks spread over the workers of the pool, on this machine or others sharing the home.
@flow(name="send_chunk")
def send_chunk(campaign_id: str, chunk: str, config: str | None = None, overrides: dict | None = None) -> dict:
    interrupt.rearm()  # Prefect's engine has just put its own SIGTERM handler in place
    settings = load_settings(config, overrides)
    spec, chunks = load_plan_task(settings, campaign_id)
    # A second run of a chunk that is being sent (a duplicate submission) finds its ledger locked and
    # returns {"busy": 1}; one that comes after resumes from the ledger: no recipient is sent twice.
    return send_chunk_task(settings, spec, chunk_named(settings.home, campaign_id, chunks, chunk), busy_ok=True)
