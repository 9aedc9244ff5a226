"""Who of the matched audience is left out, and why: one rule per subscriber, recorded in campaign_exclusions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.split import band_lists, bands

# The order rules are tried in (the first that applies is recorded): most lasting first.
RULE_ORDER = ("status:<status>", "suppressed:<cause>", "soft_bounces", "rule:<pattern>", "exclude:<name>",
              "frequency_cap", "frequency:<weekly|monthly>")


@dataclass(frozen=True)
class Limits:
    """The settings the rules read: the soft-bounce threshold and the frequency cap."""

    soft_limit: int = 3
    soft_window_days: int = 30
    frequency_cap: int = 0  # campaigns per subscriber within frequency_days; 0: no cap
    frequency_days: int = 7

    def for_campaign(self, spec: CampaignSpec) -> Limits:
        """The campaign's own cap (frequency_cap: {campaigns, days}, or false) over the setting."""
        cap = spec.frequency_cap
        if cap is None:
            return self
        return Limits(self.soft_limit, self.soft_window_days, cap.campaigns, cap.days or self.frequency_days)


def classify(con: duckdb.DuckDBPyConnection, spec: CampaignSpec, limits: Limits, now: datetime,
             local_variants: list[str]) -> None:
    """The TEMP TABLE plan_classified: every matched subscriber (campaign_target, and who the targeting's
    segment.exclude removed, if it left campaign_target_excluded) with the rule that excludes it, or NULL;
    the planned with their variant (the A/B split), domain and zone key (for `local_variants`)."""
    con.execute(q("stage_target_excluded"))
    limits = limits.for_campaign(spec)
    con.execute(q("stage_plan_matched"))
    con.execute(q("stage_plan_rule_hits"))
    for pattern, action, value in con.execute(q("regex_rules")).fetchall():
        con.execute(q("insert_regex_rule_hits"), {"pattern": pattern, "action": action, "value": value})
    con.execute(q("stage_plan_split_functions"))
    names, los = band_lists(bands(spec))
    con.execute(q("stage_plan_classified"), {
        "campaign_id": spec.campaign_id, "now": now, "soft_limit": limits.soft_limit,
        "soft_window_days": limits.soft_window_days, "cap": limits.frequency_cap, "cap_days": limits.frequency_days,
        "zones": bool(local_variants), "local_variants": local_variants,
        "frequencies": con.execute(q("any_frequency_choice")).fetchone()[0],
        "names": names, "los": los,
    })


def record(con: duckdb.DuckDBPyConnection, campaign_id: str) -> None:
    con.execute(q("insert_exclusions"), {"campaign_id": campaign_id})


def counts_by_rule(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict[str, int]:
    return dict(con.execute(q("exclusion_counts"), {"campaign_id": campaign_id}).fetchall())
