"""Flow: plan a campaign from its file — register it, freeze its audience, write its chunks."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from prefect import flow

from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.settings import load_settings
from mailflow.tasks.core.run_tables import plan_rows
from mailflow.tasks.plan.campaign import load_campaign
from mailflow.tasks.plan.tasks import plan_task


@flow(name="plan_campaign")
def plan_campaign(campaign_file: str, config: str | None = None, overrides: dict | None = None,
                  by: str = "plan_campaign flow") -> dict:
    settings = load_settings(config, overrides)
    spec = load_campaign(Path(campaign_file))
    progress = RunProgress("plan_campaign", 1, "plans written")
    result = asdict(plan_task(settings, spec, by, origin=f"{campaign_file}:"))  # errors name the file
    progress.step(spec.campaign_id)
    result_table("plan_campaign", plan_rows(result), f"Plan of campaign {spec.campaign_id}: audience, exclusions, split")
    return result
