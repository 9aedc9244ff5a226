"""The send stage's Prefect tasks: thin wrappers over send.chunk, send.schedule and send.retry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mailflow import interrupt
from mailflow.errors import MailflowError, NeedsAttention
from mailflow.settings import Settings
from mailflow.tasks.deliver.shaping import ProviderLane
from mailflow.tasks.deliver.tasks import prefect_rate_limit
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import load_plan, preflight, send_chunk
from mailflow.tasks.send.due import due_campaigns
from mailflow.tasks.send.failure import chunk_failure, chunk_label, failure_markdown
from mailflow.tasks.send.retry import deferred_chunks
from mailflow.tasks.send.schedule import PlannedChunk, Schedule, abort_send, begin_send, finish_send, outcome_of_send


@task(name="load_plan", cache_policy=NO_CACHE)
def load_plan_task(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[PlannedChunk]]:
    return load_plan(settings, campaign_id)


@task(name="begin_send", cache_policy=NO_CACHE)
def begin_send_task(settings: Settings, campaign_id: str, chunks: list[PlannedChunk], by: str) -> Schedule:
    return begin_send(settings.home, campaign_id, chunks, by, datetime.now(UTC))


@task(name="preflight_render", cache_policy=NO_CACHE)
def preflight_task(settings: Settings, spec: CampaignSpec, chunks: list[PlannedChunk], by: str, sample: int = 20) -> int:
    """The first chunk of each variant due renders its sample; a failure aborts the campaign, naming the chunk."""
    firsts = {c.variant: c for c in reversed(chunks)}
    rendered = 0
    for chunk in firsts.values():
        try:
            rendered += len(preflight(settings, spec, chunk.path, sample, chunk.variant))
        except NeedsAttention as exc:
            failure = chunk_failed(spec.campaign_id, chunk, exc)
            abort_send(settings.home, spec.campaign_id, by, str(failure))
            raise failure from exc
    return rendered


def chunk_failed(campaign_id: str, chunk: PlannedChunk, exc: Exception) -> BaseException:
    """The error that fails the run, naming the chunk; the same words go into the run's `send-<id>-failure` artifact."""
    label = chunk_label(campaign_id, chunk.path)
    failure = chunk_failure(label, exc)
    if failure is not exc:  # a stop request is no failure
        create_markdown_artifact(failure_markdown(label, exc), key=f"send-{campaign_id}-failure",
                                 description=f"Why campaign {campaign_id} failed")
    return failure


@task(name="finish_send", cache_policy=NO_CACHE)
def finish_send_task(settings: Settings, campaign_id: str, counts: dict[str, int], by: str) -> dict:
    chunks = load_plan(settings, campaign_id)[1]
    done = finish_send(settings.home, campaign_id, chunks, by, datetime.now(UTC), settings.send.resend_in_doubt)
    return outcome_of_send(settings.home, campaign_id, counts, done)


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
def send_chunk_task(settings: Settings, spec: CampaignSpec, chunk: PlannedChunk, retry: bool = False,
                    busy_ok: bool = False) -> dict[str, int]:
    # A task retry resumes from the ledger, so it never sends a logged recipient twice.
    acquire = prefect_rate_limit() if settings.send.rate > 0 else None
    return asyncio.run(send_chunk(settings, spec, chunk.path, variant=chunk.variant, retry=retry, acquire=acquire,
                                  lanes=_LANES, interrupted=interrupt.requested, busy_ok=busy_ok))


@task(name="find_deferred", cache_policy=NO_CACHE)
def deferred_chunks_task(settings: Settings, campaign_id: str | None = None) -> list[tuple[CampaignSpec, PlannedChunk]]:
    return deferred_chunks(settings, campaign_id)


@task(name="find_due_campaigns", cache_policy=NO_CACHE)
def due_campaigns_task(settings: Settings) -> list[str]:
    return due_campaigns(settings.home, datetime.now(UTC))
