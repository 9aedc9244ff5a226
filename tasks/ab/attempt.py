"""One decision attempt for a campaign: its test's timing from the lifecycle files, the verdict, its record, and what follows."""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.ab.decide import FALLBACK_CONTROL, FALLBACK_LEADER, METHOD, TOO_FEW, WAIT, decide
from mailflow.tasks.ab.record import final_decision, lift_of, remainder_size, store, variant_counts
from mailflow.tasks.files.lifecycle import CANCELLED, PAUSED, SENT, campaign_ids, state_of, transitions
from mailflow.tasks.files.manifest import chunk_entries, read_manifest
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.chunks import release_remainder
from mailflow.tasks.send.schedule import short_time


def ab_spec(home: Path, campaign_id: str) -> CampaignSpec:
    """The planned spec of a campaign with an A/B test (an `ab:` rule and two or more variants)."""
    spec = CampaignSpec.from_dict(read_manifest(home, campaign_id)["spec"])
    if spec.ab is None or len(spec.variants) < 2:
        raise MailflowError(f"campaign {campaign_id!r} has no A/B test (its file needs `ab:` and two or more variants)")
    return spec


def test_finished_at(home: Path, campaign_id: str) -> datetime | None:
    """When the test's chunks had all been sent: the campaign's latest move to `sent` (the held
    remainder does not count towards it); None while it has not got there."""
    moves = [m for m in transitions(home, campaign_id) if m.to_state == SENT]
    return datetime.fromisoformat(moves[-1].at).astimezone(UTC) if moves else None


def attempt(con: duckdb.DuckDBPyConnection, home: Path, campaign_id: str, now: datetime, by: str,
            dry_run: bool = False) -> dict:
    """Decide the campaign's A/B test now and store the attempt (unless dry_run). A decision that
    stands is returned as it is, `already_decided`, and nothing new is stored."""
    spec = ab_spec(home, campaign_id)
    state = state_of(home, campaign_id)
    if state == CANCELLED:
        raise MailflowError(f"campaign {campaign_id!r} is cancelled; its A/B test is not decided")
    stands = final_decision(con, campaign_id)
    if stands:
        return stands | {"already_decided": True, "stored": False, "state": state,
                         "send_remainder": not dry_run and _remainder_pending(stands, state)}
    rule = spec.ab
    verdict = decide(rule, variant_counts(con, campaign_id, spec.variant_names))
    finished = test_finished_at(home, campaign_id)
    if finished is None and verdict.outcome in (FALLBACK_LEADER, FALLBACK_CONTROL):
        # a test still sending has not said its last: only a clear winner is acted on before its end
        verdict = replace(verdict, outcome=WAIT if verdict.p_value is not None else TOO_FEW, winner=None,
                          reason=verdict.reason.split("; the fallback is")[0] + "; a fallback waits for the test to finish")
    wait_ends = finished + timedelta(seconds=rule.wait_seconds) if finished else None
    early = wait_ends is None or now < wait_ends
    next_try = None if verdict.final else (wait_ends if early else now + timedelta(seconds=rule.wait_seconds))
    row = {
        "campaign_id": campaign_id, "decided_at": now, "metric": rule.metric, "method": METHOD,
        "confidence": rule.confidence, "min_per_variant": rule.min_per_variant, "fallback": rule.fallback,
        **{k: v for k, v in asdict(verdict).items() if k != "reason"}, "final": verdict.final,
        "reason": verdict.reason + _timing(finished, wait_ends, early, next_try),
        "test_finished_at": finished, "early": early, "next_try_at": next_try,
        "remainder_recipients": remainder_size(con, campaign_id), "decided_by": by,
    }
    holdout = lift_of(con, campaign_id, now, rule.confidence)
    row |= {"holdout": holdout, "holdout_lift": holdout["lift"] if holdout else None}
    row["attempt"] = None if dry_run else store(con, row)
    return row | {"remainder_sent": False, "already_decided": False, "stored": not dry_run, "state": state,
                  "send_remainder": not dry_run and _remainder_pending(row, state)}


def _remainder_pending(decision: dict, state: str | None) -> bool:
    """A final decision whose remainder has not gone through the send flow, in a campaign not paused."""
    return bool(decision["final"] and decision["remainder_recipients"] and not decision.get("remainder_sent")
                and state != PAUSED)


def _timing(finished: datetime | None, wait_ends: datetime | None, early: bool, next_try: datetime | None) -> str:
    said = ""
    if finished is None:
        said = " (decided while the test is still sending)"
    elif early:
        said = f" (decided early: the test finished at {short_time(finished)}, its wait ends at {short_time(wait_ends)})"
    if next_try:
        said += f"; pick_ab_winner tries again from {short_time(next_try)}"
    return said


def release(home: Path, campaign_id: str, winner: str) -> int:
    """Give the held remainder the winner's variant (tasks/plan/chunks.py); the rows released. Run
    again after an interrupted send, the chunks are already the winner's and nothing changes."""
    held = held_rows(home, campaign_id)
    release_remainder(home, campaign_id, winner)
    return held


def due_for_decision(home: Path, status: dict[str, tuple[bool, datetime | None]], now: datetime) -> list[str]:
    """Campaigns with an A/B test and no decision standing whose test finished sending (they are
    `sent`) at least `wait` ago, and whose last wait or too_few attempt said to try again by now."""
    due = []
    for campaign_id in campaign_ids(home):
        decided, next_try = status.get(campaign_id, (False, None))
        if decided or state_of(home, campaign_id) != SENT:
            continue
        spec = CampaignSpec.from_dict(read_manifest(home, campaign_id)["spec"])
        finished = test_finished_at(home, campaign_id)
        if spec.ab is None or len(spec.variants) < 2 or finished is None:
            continue
        if finished + timedelta(seconds=spec.ab.wait_seconds) <= now and (next_try is None or next_try <= now):
            due.append(campaign_id)
    return due


def held_rows(home: Path, campaign_id: str) -> int:
    """Recipients still held for the winner in the manifest."""
    return sum(e.rows for e in chunk_entries(read_manifest(home, campaign_id)) if e.held)
