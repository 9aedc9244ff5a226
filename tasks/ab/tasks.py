"""The A/B stage's Prefect tasks: thin wrappers over ab.attempt and ab.record."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.ab.attempt import attempt, due_for_decision, release
from mailflow.tasks.ab.record import decision_status, mark_remainder_sent
from mailflow.tasks.core.warehouse import connect


@task(name="find_ab_tests_due", cache_policy=NO_CACHE)
def due_for_decision_task(settings: Settings, now: datetime) -> list[str]:
    with connect(settings.warehouse) as con:
        status = decision_status(con)
    return due_for_decision(settings.home, status, now)


@task(name="decide_ab_test", cache_policy=NO_CACHE)
def decide_task(settings: Settings, campaign_id: str, now: datetime, by: str, dry_run: bool) -> dict:
    with connect(settings.warehouse) as con:
        return attempt(con, settings.home, campaign_id, now, by, dry_run)


@task(name="release_remainder", cache_policy=NO_CACHE)
def release_task(settings: Settings, campaign_id: str, winner: str) -> int:
    return release(settings.home, campaign_id, winner)


@task(name="mark_remainder_sent", cache_policy=NO_CACHE)
def mark_sent_task(settings: Settings, decision: dict, released: int, sent: dict) -> dict:
    if sent.get("stopped"):  # paused or cancelled meanwhile: `campaigns resume` sends the rest
        return decision | {"released": released, "sent": sent}
    at = datetime.now(UTC)
    with connect(settings.warehouse) as con:
        mark_remainder_sent(con, decision["campaign_id"], at)
    return decision | {"remainder_sent": True, "remainder_sent_at": at, "released": released, "sent": sent}
