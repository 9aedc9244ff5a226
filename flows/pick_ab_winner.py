"""Flow: decide A/B tests whose wait has elapsed (or one campaign now) and send each remainder with its winner."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import flow

from mailflow.flows.aggregate_engagement import aggregate_engagement
from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.flows.send_campaign import send_campaign
from mailflow.settings import load_settings
from mailflow.tasks.ab.tasks import decide_task, due_for_decision_task, mark_sent_task, release_task
from mailflow.tasks.core.run_tables import decision_rows


# Scheduled every few minutes, it is what "decided at the test's wait time" becomes: each run
# decides the campaigns whose test finished sending at least `wait` ago and has no decision standing.
@flow(name="pick_ab_winner")
def pick_ab_winner(campaign_id: str | None = None, config: str | None = None, overrides: dict | None = None,
                   now: datetime | None = None, dry_run: bool = False, by: str = "flow pick_ab_winner") -> dict:
    settings = load_settings(config, overrides)
    aggregated = aggregate_engagement(config, overrides)  # decide on every event logged so far
    now = now or datetime.now(UTC)
    due = [campaign_id] if campaign_id else due_for_decision_task(settings, now)
    progress = RunProgress("pick_ab_winner", len(due), "A/B tests due")
    decisions = [decide_ab_test(c, config, overrides, now, dry_run, by) for c in progress.follow(due)]
    result_table("pick_ab_winner", decision_rows({"decisions": decisions}), "A/B decisions of this run")
    return {"now": now, "aggregated": aggregated, "decisions": decisions}


@flow(name="decide_ab_test")
def decide_ab_test(campaign_id: str, config: str | None, overrides: dict | None, now: datetime, dry_run: bool,
                   by: str) -> dict:
    settings = load_settings(config, overrides)
    decision = decide_task(settings, campaign_id, now, by, dry_run)
    if not decision["send_remainder"]:
        return decision
    released = release_task(settings, campaign_id, decision["winner"])
    sent = send_campaign(campaign_id, config, overrides, by=by)  # the normal send path: the campaign is `sending` again
    return mark_sent_task(settings, decision, released, sent)
