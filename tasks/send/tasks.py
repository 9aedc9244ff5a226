"""The send stage's Prefect tasks: thin wrappers over send.chunk and send.retry."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow import interrupt
from mailflow.errors import MailflowError, NeedsAttention
from mailflow.settings import Settings
from mailflow.tasks.deliver.shaping import ProviderLane
from mailflow.tasks.deliver.tasks import prefect_rate_limit
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import load_plan, preflight, send_chunk
from mailflow.tasks.send.retry import deferred_chunks


@task(name="load_plan", cache_policy=NO_CACHE)
def load_plan_task(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[Path]]:
    return load_plan(settings, campaign_id)


@task(name="preflight_render", cache_policy=NO_CACHE)
def preflight_task(settings: Settings, spec: CampaignSpec, chunk: Path, sample: int = 20) -> int:
    return len(preflight(settings, spec, chunk, sample))


_LANES: dict[str, ProviderLane] = {}  # provider suspensions last for the worker process, across chunks


def transient(task, task_run, state) -> bool:
    """Retry a chunk after unexpected trouble, not after a clear verdict (a paused relay, bad settings)."""
    try:
        state.result()
    except (MailflowError, NeedsAttention):
        return False
    except Exception:  # noqa: BLE001 - anything else may pass
        return True
    return True


@task(name="send_chunk", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5, retry_condition_fn=transient)
def send_chunk_task(settings: Settings, spec: CampaignSpec, chunk: Path, retry: bool = False) -> dict[str, int]:
    # A task retry resumes from the ledger, so it never sends a logged recipient twice.
    acquire = prefect_rate_limit() if settings.send.rate > 0 else None
    return asyncio.run(send_chunk(settings, spec, chunk, retry=retry, acquire=acquire, lanes=_LANES,
                                  interrupted=interrupt.requested))


@task(name="find_deferred", cache_policy=NO_CACHE)
def deferred_chunks_task(settings: Settings, campaign_id: str | None = None) -> list[tuple[CampaignSpec, Path]]:
    return deferred_chunks(settings, campaign_id)
