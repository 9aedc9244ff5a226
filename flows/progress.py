"""Flow glue: follow a send's chunks as they finish, with a Prefect progress artifact and an outcome table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any
from uuid import UUID

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.futures import PrefectFuture, as_completed

STATUSES = ("delivered", "deferred", "bounced", "failed", "in_doubt", "skipped")


def outcome_rows(counts: Counter) -> list[dict[str, Any]]:
    return [{"outcome": status, "recipients": counts.get(status, 0)} for status in STATUSES]


def follow_chunks(campaign_id: str, futures: Iterable[PrefectFuture]) -> Iterator[dict[str, int]]:
    """Yield each chunk's counts as it finishes, keeping the progress artifact and outcome table current."""
    futures = list(futures)
    artifact: UUID = create_progress_artifact(0.0, key=f"send-{campaign_id}-progress",
                                              description=f"Chunks of campaign {campaign_id} sent")
    total: Counter = Counter()
    for done, future in enumerate(as_completed(futures), start=1):
        counts = future.result()
        total.update(counts)
        update_progress_artifact(artifact, 100.0 * done / len(futures))
        yield counts
    create_table_artifact(outcome_rows(total), key=f"send-{campaign_id}-outcomes",
                          description=f"Outcomes of campaign {campaign_id} (this run)")
