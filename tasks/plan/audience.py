"""Plan a campaign: target, exclude (with reasons), split, chunk, write the files, swap the manifest — or change nothing."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.settings_warmup import WarmupSettings
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import transaction
from mailflow.tasks.files.ledger import ledger_path
from mailflow.tasks.files.lifecycle import current_state, record_transition, state_of
from mailflow.tasks.files.manifest import campaign_dir, chunk_entries, read_manifest, write_manifest
from mailflow.tasks.files.suppress import write_snapshot
from mailflow.tasks.plan import exclusions
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.chunks import assign, chunk_folder, write_chunks
from mailflow.tasks.plan.exclusions import Limits
from mailflow.tasks.plan.schedule import uses_zones
from mailflow.tasks.plan.segment_files import segment_dirs
from mailflow.tasks.plan.segments import target_audience
from mailflow.tasks.plan.split import HOLDOUT, REMAINDER
from mailflow.tasks.plan.warmup import plan_warmup

REPLANNABLE = ("draft", "planned", "scheduled", "aborted")  # and only with no ledger record
SENDING = "sending"  # refuse_if_sending: it has started, and the file is the one planned


@dataclass(frozen=True)
class PlanResult:
    campaign_id: str
    audience_size: int  # recipients to be mailed: the variants' and the remainder's
    chunk_count: int
    campaign_dir: str
    status: str  # planned, or scheduled when a chunk waits for its time
    replanned: bool
    already_planned: bool = False  # it has started sending and the file is unchanged: nothing was done
    matched: int = 0
    excluded: dict[str, int] = field(default_factory=dict)  # by rule
    holdout: int = 0
    variants: dict[str, int] = field(default_factory=dict)  # recipients per variant (remainder, holdout too)
    next_send: str | None = None  # the earliest not_before, when scheduled
    warnings: list[str] = field(default_factory=list)
    warmup: dict | None = None  # the transport's warm-up: today's step and caps, who goes today and who later


@dataclass(frozen=True)
class PlanOptions:
    """What a plan reads beyond the campaign file: the rules' settings, where segments live, the
    template check to run on a sample of the planned audience, and the clock (tests fix it)."""

    limits: Limits = field(default_factory=Limits)
    segment_dirs: tuple[Path, ...] = ()
    check: Callable[[CampaignSpec, list[dict]], None] | None = None
    render_sample: int = 5
    now: datetime | None = None
    by: str = "mailflow plan"  # who planned, for the campaign's lifecycle record
    origin: str = "campaign"  # how an error names the campaign file ("spring.yaml:")
    warmup: WarmupSettings = field(default_factory=WarmupSettings)

    @classmethod
    def from_settings(cls, settings: Settings, check: Callable[[CampaignSpec, list[dict]], None] | None = None,
                      now: datetime | None = None, by: str = "mailflow plan", origin: str = "campaign") -> PlanOptions:
        limits = Limits(settings.soft_bounce_limit, settings.soft_bounce_window_days, settings.plan.frequency_cap,
                        settings.plan.frequency_days)
        return cls(limits, tuple(segment_dirs(settings.segments_dir)), check, settings.plan.render_sample, now, by, origin,
                   settings.warmup)


def plan(con: duckdb.DuckDBPyConnection, home: Path, spec: CampaignSpec, chunk_size: int,
         options: PlanOptions | None = None) -> PlanResult:
    """Plan (or re-plan) a campaign that has not started sending. The warehouse changes in one
    transaction; the chunk files go to a new folder and the manifest naming them is swapped last,
    then the old folder is removed: a reader sees the old plan or the new one. A failing check
    (a condition, a template) changes nothing."""
    options = options or PlanOptions()
    now = options.now or datetime.now(UTC)
    previous = refuse_if_sending(con, home, spec)
    if previous == SENDING:
        return as_planned(con, home, spec)
    plan_id = f"{now:%Y%m%dT%H%M%S}-{os.urandom(3).hex()}"
    out_dir, folder = campaign_dir(home, spec.campaign_id), chunk_folder(plan_id)
    try:
        with transaction(con):
            result = _compute(con, home, spec, chunk_size, options, now, plan_id, previous is not None)
            if options.check is not None:
                sample = con.sql(q("sample_rows"), params={"sample": max(options.render_sample, 1)}).pl()
                options.check(spec, sample.to_dicts())
            entries = write_chunks(con, out_dir, folder)
        # The send stage checks suppressions from this file, never from the warehouse.
        write_snapshot(home, con.sql(q("suppression_snapshot")).pl(),
                       dict(con.execute(q("loaded_file_sizes")).fetchall()))
        # Recorded before the manifest that makes the campaign visible, so a first plan is a move from nothing.
        record_transition(home, spec.campaign_id, result.status, options.by,
                          f"{'re-planned' if result.replanned else 'planned'}: {result.audience_size} recipients "
                          f"in {result.chunk_count} chunks")
        write_manifest(out_dir, spec.as_dict(), entries, result.audience_size, plan_id=plan_id)
    except BaseException:
        shutil.rmtree(out_dir / folder, ignore_errors=True)
        raise
    for old in out_dir.glob("chunks*"):  # the previous plan's files, now that no manifest names them
        if old.name != folder:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
    return replace(result, campaign_dir=str(out_dir))


def _compute(con: duckdb.DuckDBPyConnection, home: Path, spec: CampaignSpec, chunk_size: int, options: PlanOptions,
             now: datetime, plan_id: str, replanned: bool) -> PlanResult:
    cid = spec.campaign_id
    groups = [*spec.variant_names, REMAINDER]
    con.execute(q("drop_target_excluded"))
    target_audience(con, lists=spec.lists, include=spec.segment_include, exclude=spec.segment_exclude,
                    where=spec.where, params=spec.params, campaign_id=cid, segment_dirs=options.segment_dirs,
                    origin=options.origin)
    local = sorted(uses_zones(spec, groups))
    try:
        exclusions.classify(con, spec, options.limits, now, local)
    except duckdb.Error as exc:  # e.g. a bad regex rule
        raise MailflowError(f"campaign {cid!r}: {str(exc).strip().splitlines()[0]}") from None
    warmup = plan_warmup(con, home, options.warmup, spec.transport, cid, now)
    assign(con, spec, groups, chunk_size, now)
    matched, excluded, planned, audience, holdout = con.execute(q("plan_counts")).fetchall()[0]
    con.execute(q("delete_recipients"), {"campaign_id": cid})
    con.execute(q("delete_exclusions"), {"campaign_id": cid})
    con.execute(q("insert_recipients"), {"campaign_id": cid})
    exclusions.record(con, cid)
    entries = con.execute(q("chunk_entries")).fetchall()
    waiting = sorted(nb for _, _, _, nb in entries if nb is not None and nb > now)
    status = "scheduled" if waiting else "planned"
    con.execute(q("upsert_campaign"), {
        "campaign_id": cid, "name": spec.name, "spec": json.dumps(spec.as_dict()), "audience": audience,
        "chunks": len(entries), "matched": matched, "excluded": excluded, "planned": planned, "plan_id": plan_id,
        "now": now,
    })
    con.execute(q("set_campaign_status"), {"campaign_id": cid, "status": status})
    by_rule = exclusions.counts_by_rule(con, cid)
    variants = {name: 0 for name in spec.variant_names}
    for _, variant, rows, _ in entries:
        variants[variant] = variants.get(variant, 0) + rows
    if holdout:
        variants[HOLDOUT] = holdout
    return PlanResult(cid, audience, len(entries), "", status, replanned, False, matched, by_rule, holdout, variants,
                      waiting[0].astimezone(UTC).isoformat() if waiting else None,
                      empty_audience_warnings(matched, audience, by_rule), warmup)


def refuse_if_sending(con: duckdb.DuckDBPyConnection, home: Path, spec: CampaignSpec) -> str | None:
    """A campaign may be re-planned until it starts sending: the status it had (None when new), or
    SENDING when it has started and the file is unchanged (nothing to do). A changed file is refused."""
    campaign_id = spec.campaign_id
    rows = con.execute(q("campaign_by_id"), {"campaign_id": campaign_id}).fetchall()
    state = current_state(home, campaign_id)  # the files know of a pause or send the warehouse has not loaded yet
    status = state.state if state else rows[0][2] if rows else None
    ledger = ledger_path(home, campaign_id, 0).parent
    started = ledger.is_dir() and any(ledger.iterdir())
    if status == "cancelled":  # for good, changed file or not: nothing to keep "as planned"
        raise MailflowError(f"campaign {campaign_id!r} is cancelled: plan the file under a new name")
    if (status is None or status in REPLANNABLE) and not started:
        return status
    if rows and json.loads(rows[0][3]) == spec.as_dict():
        return SENDING
    why = f"status {status}" if status not in (None, *REPLANNABLE) else f"it has send records in {ledger}"
    raise MailflowError(
        f"campaign {campaign_id!r} has started sending ({why}) and cannot be re-planned: stop it with "
        f"`mailflow campaigns cancel {campaign_id}` and plan the changed file under a new name")


def as_planned(con: duckdb.DuckDBPyConnection, home: Path, spec: CampaignSpec) -> PlanResult:
    """The plan of a campaign that is sending, as it was made."""
    row = con.execute(q("campaign_plan"), {"campaign_id": spec.campaign_id}).fetchall()[0]
    status, audience, chunks, matched, holdout = row
    status = state_of(home, spec.campaign_id) or status  # the files are ahead of the warehouse (paused, sent)
    manifest = read_manifest(home, spec.campaign_id)
    variants: dict[str, int] = {}
    for entry in chunk_entries(manifest):
        variants[entry.variant] = variants.get(entry.variant, 0) + entry.rows
    if holdout:
        variants[HOLDOUT] = holdout
    return PlanResult(spec.campaign_id, audience, chunks, str(campaign_dir(home, spec.campaign_id)), status, False,
                      True, matched, exclusions.counts_by_rule(con, spec.campaign_id), holdout, variants)


def empty_audience_warnings(matched: int, audience: int, by_rule: dict[str, int]) -> list[str]:
    """Why nobody will be mailed, in words a new user can act on."""
    if audience:
        return []
    if not matched:
        return ["nobody to mail: no subscriber matches the campaign's lists, segments and where "
                "(none ingested yet? run `mailflow ingest FILE`)"]
    if not by_rule:
        return ["nobody to mail: every planned recipient is in the holdout"]
    rules = ", ".join(f"{rule} ({n})" for rule, n in by_rule.items())
    return [f"nobody to mail: all {matched} matched subscribers were excluded, by {rules}"]
