"""Flow glue: run a send's chunks a few at a time, keeping a progress artifact and a live table current."""

from __future__ import annotations

import json
import queue
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.futures import PrefectFuture

from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.files.tally import LedgerTally, Tally, ledger_tally, table_rows
from mailflow.tasks.send.schedule import PlannedChunk
from mailflow.tasks.send.tasks import chunk_failed

STATUSES = ("delivered", "deferred", "bounced", "failed", "in_doubt", "skipped")
T = TypeVar("T")
POLL_SECONDS = 3.0  # a poll reads only new ledger bytes (tasks/files/tally.py), each refresh is two API calls


def outcome_rows(counts: Counter) -> list[dict[str, Any]]:
    return [{"outcome": status, "recipients": counts.get(status, 0)} for status in STATUSES]


def follow_chunks(home: Path, campaign_id: str, submit: Callable[[PlannedChunk], PrefectFuture], chunks: Iterable[PlannedChunk],
                  window: int, stop: Callable[[], bool], poll_seconds: float | None = None) -> Iterator[dict[str, int]]:
    """Send the chunks through `submit`, at most `window` at a time, none once `stop()` says so;
    yield each chunk's counts as it finishes. Meanwhile, every `poll_seconds`, tally the ledger
    into the progress artifact (recipients with an outcome / audience) and the live table."""
    live = LiveArtifacts(campaign_id, ledger_tally(home, campaign_id), read_manifest(home, campaign_id)["audience_size"])
    total: Counter = Counter()
    try:
        for counts in in_window(submit, chunks, window, stop, live.refresh, poll_seconds or POLL_SECONDS,
                                failed=lambda chunk, exc: chunk_failed(campaign_id, chunk, exc)):
            total.update(counts)
            yield counts
    finally:  # also when a chunk failed or the send was interrupted: the artifacts show where it stopped
        live.refresh()
    create_table_artifact(outcome_rows(total), key=f"send-{campaign_id}-outcomes",
                          description=f"Outcomes of campaign {campaign_id} (this run)")


def in_window(submit: Callable[[T], PrefectFuture], items: Iterable[T], window: int, stop: Callable[[], bool],
              idle: Callable[[], object] = lambda: None, poll_seconds: float = POLL_SECONDS,
              failed: Callable[[T, Exception], BaseException] | None = None) -> Iterator[Any]:
    """Submit the items, at most `window` running at once, and yield their results as they finish.

    Submitting only as workers free up (not all at once, as map() does) is what lets a stop
    request hold: an item not yet submitted is never started, while one queued in the task
    runner would start whatever the flow decides. `idle` runs every `poll_seconds` of waiting.
    An item that fails raises `failed(item, error)` when given: the run's error names the item.
    """
    pending, running, submitted = deque(items), 0, {}
    finished: queue.Queue[PrefectFuture] = queue.Queue()
    while True:
        while pending and running < window and not stop():
            item = pending.popleft()
            future = submit(item)
            submitted[future] = item
            future.add_done_callback(finished.put)  # one callback each: no polling of futures
            running += 1
        if not running:
            return
        try:
            future = finished.get(timeout=poll_seconds)
        except queue.Empty:
            idle()
            continue
        running -= 1
        item = submitted.pop(future)
        try:
            result = future.result()
        except Exception as exc:
            if failed is None:
                raise
            raise failed(item, exc) from exc
        yield result


class LiveArtifacts:
    """The send's progress artifact and live table, created once and updated in place.

    Prefect 3.9 makes a new version for each create under a key; a PATCH of the artifact
    (what update_progress_artifact does, and the client's update_artifact for a table)
    changes it and its key's latest entry in place, so the UI shows one current table.
    """

    def __init__(self, campaign_id: str, tally: LedgerTally, audience: int):
        self.tally, self.audience = tally, audience
        first = tally.poll()
        self.progress: UUID = create_progress_artifact(
            self.percent(first), key=f"send-{campaign_id}-progress", description=self.summary(first))
        self.table: UUID = create_table_artifact(
            table_rows(first), key=f"send-{campaign_id}-live",
            description=f"Recipients of campaign {campaign_id} by variant and provider (live; in_doubt = on the wire)")

    def refresh(self) -> Tally:
        tally = self.tally.poll()
        update_progress_artifact(self.progress, self.percent(tally), description=self.summary(tally))
        with get_client(sync_client=True) as client:
            client.update_artifact(self.table, ArtifactUpdate(data=json.dumps(table_rows(tally))))
        return tally

    def percent(self, tally: Tally) -> float:
        return 100.0 * min(tally.done, self.audience) / self.audience if self.audience else 100.0

    def summary(self, tally: Tally) -> str:
        t = tally.totals
        return (f"{tally.done} of {self.audience} recipients: {t['delivered']} delivered, "
                f"{t['deferred']} deferred, {t['bounced']} bounced, {t['in_doubt']} on the wire")
