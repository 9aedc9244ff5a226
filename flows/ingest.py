"""Flow: ingest subscriber files into the warehouse."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from mailflow.flows.artifacts import RunProgress, result_table
from mailflow.settings import load_settings
from mailflow.tasks.core.run_tables import ingest_rows
from mailflow.tasks.ingest.ingest import IngestOptions
from mailflow.tasks.ingest.normalise import load_mapping
from mailflow.tasks.ingest.screen import ScreenOptions
from mailflow.tasks.ingest.tasks import ingest_file_task


@flow(name="ingest")
def ingest(
    paths: list[str],
    list_name: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    column_map: list[str] | None = None,
    mapping_file: str | None = None,
    allow_resubscribe: bool = False,
    check_mx: bool = False,
    reject_role_accounts: bool = False,
    reject_disposable: bool = False,
    config: str | None = None,
    overrides: dict | None = None,
) -> list[dict]:
    settings = load_settings(config, overrides)
    mapping = load_mapping(Path(mapping_file) if mapping_file else None, tuple(column_map or ()))
    options = IngestOptions(
        list_name=list_name, encoding=encoding, delimiter=delimiter, allow_resubscribe=allow_resubscribe,
        check_mx=check_mx, screen=ScreenOptions(mapping, (), reject_role_accounts, reject_disposable),
    )
    progress = RunProgress("ingest", len(paths), "files ingested")
    results = list(progress.follow(ingest_file_task(settings, Path(path), options) for path in paths))
    result_table("ingest", ingest_rows(results), f"Ingest of {len(paths)} file(s): rows read, new, updated, quarantined")
    return results
