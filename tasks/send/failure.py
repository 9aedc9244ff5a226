"""A chunk that failed, named: its error keeps its class and leads with the chunk, and a Markdown note for the run's artifacts."""

from __future__ import annotations

from pathlib import Path

from mailflow.errors import Interrupted, MailflowError, NeedsAttention


def chunk_label(campaign_id: str, chunk: Path) -> str:
    """'chunk-00003 of campaign 'news'': the chunk's file stem, as its ledger is named too."""
    return f"{chunk.stem} of campaign {campaign_id!r}"


def chunk_failure(label: str, exc: BaseException) -> BaseException:
    """The error to fail the run with: the chunk named first, so a run's state message says where and why.

    Ours keep their class (the command line's exit code depends on it); anything else becomes
    NeedsAttention with its class in the text. A stop request is no failure of the chunk: it passes as it is.
    """
    if isinstance(exc, Interrupted):
        return exc
    if isinstance(exc, MailflowError | NeedsAttention):
        return type(exc)(f"{label}: {exc}")
    return NeedsAttention(f"{label}: {type(exc).__name__}: {exc}")


def failure_markdown(label: str, exc: BaseException) -> str:
    reason = str(exc) if isinstance(exc, MailflowError | NeedsAttention) else f"{type(exc).__name__}: {exc}"
    return (f"## Failed: {label}\n\n**Reason:** {reason}\n\n"
            "Recipients with an outcome are in the ledger; running the send again resumes from it "
            "(`mailflow send CAMPAIGN`, or a new run of this deployment).\n")
