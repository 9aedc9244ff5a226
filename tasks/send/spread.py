"""Sending over Prefect workers: a chunk named in a flow run's parameters, and its counts read back from its ledger."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.tasks.files.ledger import IN_FLIGHT, ledger_state
from mailflow.tasks.files.manifest import campaign_dir
from mailflow.tasks.send.schedule import PlannedChunk, chunk_ledger


def chunk_name(home: Path, campaign_id: str, chunk: PlannedChunk) -> str:
    """The chunk's file as the manifest names it (relative to the campaign folder): a flow run's parameter
    that means the same file on every machine mounting the home, wherever it is mounted."""
    return chunk.path.relative_to(campaign_dir(home, campaign_id)).as_posix()


def chunk_named(home: Path, campaign_id: str, chunks: list[PlannedChunk], name: str) -> PlannedChunk:
    """The planned chunk called `name`; a name the plan lacks (re-planned since the run was submitted) is an error."""
    for chunk in chunks:
        if chunk_name(home, campaign_id, chunk) == name:
            return chunk
    raise MailflowError(f"campaign {campaign_id!r} has no chunk {name!r} in its plan (re-planned since?); "
                        "run `mailflow send` again to send the chunks it has now")


def chunk_counts(home: Path, campaign_id: str, chunk: PlannedChunk) -> dict[str, int]:
    """Recipients of a chunk by their last logged status: what a chunk run on a worker did, read from the
    shared home (a flow run's return value stays in the worker's process unless results are persisted)."""
    counts = Counter(state.status for state in ledger_state(chunk_ledger(home, campaign_id, chunk)).values())
    if IN_FLIGHT in counts:
        counts["in_doubt"] = counts.pop(IN_FLIGHT)
    return dict(counts)
