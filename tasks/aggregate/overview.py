"""What `mailflow campaigns list|show` print: from the campaign's files, and the warehouse when it can be read."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.files.lifecycle import campaign_ids, current_state, transitions
from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.files.tally import ledger_tally
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.split import HOLDOUT, REMAINDER
from mailflow.tasks.send.schedule import planned_chunks, progress, schedule


def campaign_list(home: Path, now: datetime) -> list[dict]:
    """Every campaign under the home with its state and schedule; reads no ledger."""
    rows = []
    for cid in campaign_ids(home):
        state = current_state(home, cid)
        manifest = _manifest(home, cid)
        plan = schedule(planned_chunks(home, cid, manifest), now) if manifest else None
        rows.append({"campaign": cid, "name": manifest["spec"]["name"] if manifest else "",
                     "state": state.state if state else "", "since": state.since if state else None,
                     "audience": manifest["audience_size"] if manifest else None,
                     "chunks": len(plan.due + plan.waiting + plan.held) if plan else 0,
                     "next_due": plan.next_due.isoformat() if plan and plan.next_due else None})
    return rows


def campaign_overview(settings: Settings, campaign_id: str, now: datetime) -> dict:
    """State and history, audience explained, variants, chunk schedule and the send's progress."""
    home = settings.home
    state = current_state(home, campaign_id)
    if state is None:
        raise MailflowError(f"no campaign {campaign_id!r} under {home} (see `mailflow campaigns list`)")
    manifest = _manifest(home, campaign_id)
    overview = {"campaign_id": campaign_id, "state": asdict(state),
                "history": [asdict(t) for t in transitions(home, campaign_id)]}
    if manifest is None:
        return overview
    spec = CampaignSpec.from_dict(manifest["spec"])
    chunks = planned_chunks(home, campaign_id, manifest)
    plan = schedule(chunks, now)
    chunk_rows: dict[str, int] = {}
    for chunk in chunks:
        chunk_rows[chunk.variant] = chunk_rows.get(chunk.variant, 0) + max(chunk.rows, 0)
    overrides = {v.name: {k: val for k, val in asdict(v).items() if k not in ("name", "weight") and val is not None}
                 for v in spec.variants}
    weights = {v.name: v.weight for v in spec.variants}
    explained = audience(settings, campaign_id, manifest["audience_size"])
    if (explained["by_variant"] or {}).get(HOLDOUT):  # mailed nothing, so in no chunk: known from the warehouse
        chunk_rows[HOLDOUT] = explained["by_variant"][HOLDOUT]
    sent = progress(home, campaign_id, chunks, now, settings.send.resend_in_doubt)
    # Of the chunks whose time has come, those sent (or sent but for deferred recipients) are not due again.
    finished = {"sent": sent.sent_chunks, "deferred": sent.deferred_chunks,
                "due": len(plan.due) - sent.sent_chunks - sent.deferred_chunks}
    overview |= {
        "name": spec.name,
        "audience": explained,
        "variants": [{"variant": name, "weight": weights.get(name), "recipients": n, "overrides": overrides.get(name, {})}
                     for name, n in sorted(chunk_rows.items(), key=lambda item: (item[0] in (REMAINDER, HOLDOUT), item[0]))],
        "ab": asdict(spec.ab) if spec.ab else None,
        "send_at": asdict(spec.send_at) if spec.send_at else None,
        "schedule": plan.counts() | finished,
        "progress": asdict(sent),
        "outcomes": ledger_tally(home, campaign_id).poll().totals,
    }
    return overview


def chunk_schedule(home: Path, campaign_id: str, now: datetime) -> dict | None:
    """The plan's chunks due now, waiting (and the first time) and held, from its manifest."""
    manifest = _manifest(home, campaign_id)
    return schedule(planned_chunks(home, campaign_id, manifest), now).counts() if manifest else None


def audience(settings: Settings, campaign_id: str, planned: int) -> dict:
    """Matched = planned + excluded by rule, from the warehouse (read-only, locked down); from the
    manifest alone when the warehouse is absent or another process holds it."""
    import duckdb

    from mailflow.tasks.core.warehouse import connect

    found = {"planned": planned, "matched": None, "excluded": None, "by_variant": None, "source": "files"}
    try:
        with connect(settings.warehouse, locked=True) as con:
            found["by_variant"] = dict(con.execute(q("audience_by_variant"), {"campaign_id": campaign_id}).fetchall())
            excluded = dict(con.execute(q("exclusions_by_rule"), {"campaign_id": campaign_id}).fetchall())
    except (MailflowError, duckdb.Error):  # absent, busy, or older than the tables: the files still tell most
        return found
    total = sum(found["by_variant"].values()) or planned
    return found | {"planned": total, "excluded": excluded, "matched": total + sum(excluded.values()),
                    "source": "warehouse"}


def _manifest(home: Path, campaign_id: str) -> dict | None:
    try:
        return read_manifest(home, campaign_id)
    except MailflowError:
        return None
