"""A planned campaign's folder and its manifest: the spec and chunk files the send stage reads."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.tasks.files.atomic import atomic_write

MANIFEST = "campaign.json"


@dataclass(frozen=True)
class ChunkEntry:
    """One chunk file of a plan, as the manifest lists it."""

    file: str  # relative to the campaign folder, e.g. "chunks/chunk-00000.parquet"
    variant: str  # the variant its recipients get; "remainder" until the A/B winner is decided
    rows: int
    not_before: str | None = None  # ISO time: the send stage leaves the chunk alone until then (None: now)
    held: bool = False  # an A/B remainder: sent only once the winner is picked
    groups: dict[str, int] | None = None  # recipients per provider group (None: planned before it was recorded)


def campaign_dir(home: Path, campaign_id: str) -> Path:
    return home / "campaigns" / campaign_id


def write_manifest(out_dir: Path, spec: dict, chunks: list[ChunkEntry], audience_size: int, **extra) -> Path:
    """Written last by the plan stage: a manifest means the chunk files are whole. Replacing it is
    how a re-plan switches to new chunk files at once."""
    manifest = {"version": 2, "spec": spec, "chunks": [asdict(c) for c in chunks], "audience_size": audience_size,
                **extra}
    return atomic_write(out_dir / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2), encoding="utf-8"))


def read_manifest(home: Path, campaign_id: str) -> dict:
    path = campaign_dir(home, campaign_id) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MailflowError(f"campaign {campaign_id!r} is not planned (no {path}); run `mailflow plan` first") from None


def chunk_entries(manifest: dict) -> list[ChunkEntry]:
    """The manifest's chunks; a version-1 manifest listed bare file names under chunks/, all variant A."""
    return [ChunkEntry(f"chunks/{c}", "A", -1) if isinstance(c, str) else ChunkEntry(**c) for c in manifest["chunks"]]
