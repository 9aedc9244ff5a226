"""Flow: ingest subscriber files into the warehouse."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from mailflow.settings import load_settings
from tasks.ingest import ingest_file_task


@flow(name="ingest")
def ingest(paths: list[str], list_name: str | None = None, config: str | None = None, overrides: dict | None = None) -> list[dict]:
    settings = load_settings(config, overrides)
    return [ingest_file_task(settings, Path(path), list_name) for path in paths]
