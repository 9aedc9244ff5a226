"""Chunks: recipients grouped by variant and send time, dealt out across domains, written as Parquet files."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from mailflow.errors import MailflowError
from mailflow.providers import PROVIDER_DOMAINS
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs
from mailflow.tasks.files.manifest import ChunkEntry, campaign_dir, chunk_entries, read_manifest, write_manifest
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.plan.schedule import times_table, uses_zones
from mailflow.tasks.plan.split import REMAINDER

CHUNK_NAME = "chunk-{:05d}.parquet"


def chunk_folder(plan_id: str) -> str:
    """Each plan writes its own folder: a re-plan never touches the chunks the manifest names until it swaps it."""
    return f"chunks-{plan_id}"


def provider_frame() -> pl.DataFrame:
    """mailflow.providers as SQL data: the interleaving deals provider groups out too."""
    rows = [(domain, name) for name, domains in PROVIDER_DOMAINS.items() for domain in domains]
    return pl.DataFrame(rows, schema={"domain": pl.String(), "provider": pl.String()}, orient="row")


def assign(con: duckdb.DuckDBPyConnection, spec: CampaignSpec, groups: list[str], chunk_size: int,
           now: datetime) -> None:
    """The TEMP TABLE plan_chunked: each mailed recipient's chunk, its not_before and its place in the chunk.
    `groups` are the variants that get chunks, in chunk order (the remainder last)."""
    local = sorted(uses_zones(spec, groups))
    zones: dict[str, set[str | None]] = {v: set() for v in local}
    for variant, zone in con.execute(q("split_zones"), {"local_variants": local}).fetchall():
        zones[variant].add(zone)
    times = pl.DataFrame(times_table(spec, groups, zones, now),
                         schema={"variant": pl.String(), "zone_key": pl.String(), "not_before": pl.Datetime("us", "UTC")},
                         orient="row")
    with inputs(con, plan_times=times, provider_domains=provider_frame()):
        con.execute(q("stage_plan_chunked"), {"chunk_size": chunk_size, "variants": groups})


def write_chunks(con: duckdb.DuckDBPyConnection, out_dir: Path, folder: str) -> list[ChunkEntry]:
    """One Parquet file per chunk under out_dir/folder, written by DuckDB in one partitioned COPY (the
    folder must be in the connection's allowed_directories: see allow_chunk_writes); the entries in
    chunk order. The remainder's chunks are held until the engagement stage picks the winner."""
    target = out_dir / folder
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    entries = [
        ChunkEntry(f"{folder}/{CHUNK_NAME.format(chunk_id)}", variant, rows,
                   not_before.astimezone(UTC).isoformat() if not_before else None, variant == REMAINDER)
        for chunk_id, variant, rows, not_before in con.execute(q("chunk_entries")).fetchall()
    ]
    if not entries:
        return entries
    # DuckDB's own path checks are string prefixes: give it the resolved folder the allow-list names.
    con.execute(q("write_chunk_files"), {"folder": str(target.resolve())})
    for entry in entries:
        chunk_id = int(entry.file.rsplit("-", 1)[1].split(".")[0])
        parts = sorted((target / f"chunk_id={chunk_id}").glob("*.parquet"))
        if len(parts) != 1:  # partitioned_write_max_open_files keeps one file per partition (allow_chunk_writes)
            raise MailflowError(f"{target}: chunk {chunk_id} was written as {len(parts)} files")
        os.replace(parts[0], out_dir / entry.file)
        (target / f"chunk_id={chunk_id}").rmdir()
    return entries


def allow_chunk_writes(con: duckdb.DuckDBPyConnection, home: Path) -> None:
    """Let this connection write chunk files under home/campaigns/ and nowhere else, before a campaign's
    condition switches external access off for the rest of the step (tasks/plan/condition.py)."""
    root = str((home / "campaigns").resolve()) + os.sep
    (home / "campaigns").mkdir(parents=True, exist_ok=True)
    open_, allowed = con.execute(q("plan_file_access")).fetchall()[0]
    if open_:
        con.execute(q("allow_chunk_directory"), {"dirs": [root]})
        con.execute(q("one_file_per_partition"))
        return
    if root not in (allowed or []):
        raise MailflowError(f"this warehouse connection can no longer write files under {root} (external access "
                            "was switched off before the plan): open a new connection to plan")


def release_remainder(home: Path, campaign_id: str, winner: str) -> list[ChunkEntry]:
    """The engagement stage's call once it has picked the winner: the remainder's chunks get the winner's
    variant and are no longer held, and the manifest is swapped at once. The chunk files keep
    `remainder` in their variant column; the send stage composes a chunk with its entry's variant."""
    manifest = read_manifest(home, campaign_id)
    spec = CampaignSpec.from_dict(manifest["spec"])
    if winner not in spec.variant_names:
        raise MailflowError(f"campaign {campaign_id!r} has no variant {winner!r} (it has {', '.join(spec.variant_names)})")
    entries = [ChunkEntry(e.file, winner, e.rows, e.not_before, False) if e.held else e for e in chunk_entries(manifest)]
    extra = {k: v for k, v in manifest.items() if k not in ("version", "spec", "chunks", "audience_size")}
    write_manifest(campaign_dir(home, campaign_id), manifest["spec"], entries, manifest["audience_size"],
                   **extra | {"winner": winner})
    return entries
