"""The ingest stage's Prefect tasks: thin wrappers over ingest.ingest."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from mailflow.settings import Settings
from mailflow.tasks.core.warehouse import connect
from mailflow.tasks.ingest.ingest import IngestOptions, ingest_file, validation_markdown


@task(name="ingest_file", cache_policy=NO_CACHE)
def ingest_file_task(settings: Settings, path: Path, options: IngestOptions) -> dict:
    resolver = None
    if options.check_mx:
        from mailflow.tasks.core.dns import make_resolver

        resolver = make_resolver(list(settings.dns.nameservers) or None, settings.dns.port, settings.dns.timeout)
    with connect(settings.warehouse) as con:
        result = ingest_file(con, path, options, settings.home, resolver)
    create_markdown_artifact(validation_markdown(result), key="ingest-validation",
                             description=f"Ingest and validation of {path.name}")
    return result.as_dict()
