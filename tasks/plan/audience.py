"""Plan a campaign: register it, freeze its audience, write its chunk files and manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from mailflow.errors import MailflowError
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs, transaction
from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.files.manifest import MANIFEST, ChunkEntry, campaign_dir, read_manifest, write_manifest
from mailflow.tasks.files.suppress import write_snapshot
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.condition import matching


@dataclass(frozen=True)
class PlanResult:
    campaign_id: str
    audience_size: int
    chunk_count: int
    campaign_dir: str
    already_planned: bool


def freeze_audience(con: duckdb.DuckDBPyConnection, spec: CampaignSpec, chunk_size: int) -> bool:
    """Register the campaign and its recipients once; False when it was planned before."""
    rows = con.execute(q("campaign_by_id"), {"campaign_id": spec.campaign_id}).fetchall()  # complete the result
    row = rows[0] if rows else None
    if row:
        if json.loads(row[3]) != spec.as_dict():
            raise MailflowError(
                f"campaign {spec.campaign_id!r} is already planned with a different file; "
                "give the campaign a new name to plan it again"
            )
        return False
    # The campaign's own condition runs alone; freeze_audience intersects it with every
    # mandatory filter, so it can only narrow the audience.
    condition = matching(con, spec.where or "TRUE", "campaign field 'where'")
    params = {"campaign_id": spec.campaign_id}
    try:
        with transaction(con), inputs(con, campaign_condition=condition):
            con.execute(q("insert_campaign"), params | {"name": spec.name, "spec": json.dumps(spec.as_dict())})
            con.execute(q("freeze_audience"), params | {"chunk_size": chunk_size, "lists": list(spec.lists)})
            con.execute(q("set_campaign_audience"), params)
    except duckdb.Error as exc:  # the query is fixed and tested: an error while it runs is the condition's
        raise MailflowError(f"campaign field 'where': {str(exc).strip().splitlines()[0]}") from None
    return True


def write_chunks(con: duckdb.DuckDBPyConnection, spec: CampaignSpec, out_dir: Path) -> list[str]:
    """One Parquet file per chunk, then the manifest last: a manifest means the chunks are whole."""
    rows = con.sql(q("chunk_rows"), params={"campaign_id": spec.campaign_id}).pl()
    chunk_dir = out_dir / "chunks"
    chunk_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for (chunk_id,), frame in rows.group_by("chunk_id", maintain_order=True):
        name = f"chunk-{chunk_id:05d}.parquet"
        atomic_write(chunk_dir / name, lambda p, f=frame: f.write_parquet(p))
        entries.append(ChunkEntry(f"chunks/{name}", "A", frame.height))
    write_manifest(out_dir, spec.as_dict(), entries, rows.height)
    return [e.file for e in entries]


def plan(con: duckdb.DuckDBPyConnection, home: Path, spec: CampaignSpec, chunk_size: int) -> PlanResult:
    new = freeze_audience(con, spec, chunk_size)
    # The send stage checks suppressions from this file, never from the warehouse.
    write_snapshot(home, con.sql(q("suppression_snapshot")).pl(), dict(con.execute(q("loaded_file_sizes")).fetchall()))
    out_dir = campaign_dir(home, spec.campaign_id)
    if new or not (out_dir / MANIFEST).exists():
        write_chunks(con, spec, out_dir)
    manifest = read_manifest(home, spec.campaign_id)
    return PlanResult(spec.campaign_id, manifest["audience_size"], len(manifest["chunks"]), str(out_dir), not new)
