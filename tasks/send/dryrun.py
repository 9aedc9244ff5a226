"""Dry run: render sample messages of a planned campaign to .eml files, sending nothing."""

from __future__ import annotations

from pathlib import Path

from mailflow.settings import Settings
from mailflow.tasks.files.manifest import campaign_dir
from mailflow.tasks.send.chunk import load_plan, preflight


def write_samples(settings: Settings, campaign_id: str, count: int) -> list[Path]:
    """Render the first `count` recipients; stops at the first that fails (NeedsAttention)."""
    spec, chunks = load_plan(settings, campaign_id)
    out_dir = campaign_dir(settings.home, campaign_id) / "dry-run"
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for chunk in [c for c in chunks if not c.held]:  # a held remainder has no variant until the winner
        if len(written) >= count:
            break
        for envelope in preflight(settings, spec, chunk.path, count - len(written), chunk.variant):
            path = out_dir / f"sample-{len(written) + 1:04d}.eml"
            path.write_bytes(envelope.data)
            written.append(path)
    return written
