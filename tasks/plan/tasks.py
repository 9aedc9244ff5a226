"""The plan stage's Prefect tasks: thin wrappers over plan.audience."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.core.warehouse import connect
from mailflow.tasks.plan.audience import PlanOptions, PlanResult, plan
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.preview import template_check


@task(name="plan_campaign", cache_policy=NO_CACHE)
def plan_task(settings: Settings, spec: CampaignSpec, by: str = "plan_campaign flow", origin: str = "campaign") -> PlanResult:
    with connect(settings.warehouse, memory_limit=settings.plan.memory_limit) as con:
        return plan(con, settings.home, spec, settings.send.chunk_size,
                    PlanOptions.from_settings(settings, check=template_check(settings), by=by, origin=origin))
