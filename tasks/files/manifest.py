"""A planned campaign's folder and its manifest: the spec and chunk files the send stage reads."""

from __future__ import annotations

import json
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.tasks.files.atomic import atomic_write

MANIFEST = "campaign.json"


def campaign_dir(home: Path, campaign_id: str) -> Path:
    return home / "campaigns" / campaign_id


def write_manifest(out_dir: Path, spec: dict, chunks: list[str], audience_size: int) -> Path:
    """Written last by the plan stage: a manifest means the chunk files are whole."""
    manifest = {"spec": spec, "chunks": chunks, "audience_size": audience_size}
    return atomic_write(out_dir / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2), encoding="utf-8"))


def read_manifest(home: Path, campaign_id: str) -> dict:
    path = campaign_dir(home, campaign_id) / MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MailflowError(f"campaign {campaign_id!r} is not planned (no {path}); run `mailflow plan` first") from None
