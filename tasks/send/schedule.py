"""A send's place in the campaign lifecycle: which chunks are due, how far the send has come, and the moves it makes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mailflow.errors import MailflowError
from mailflow.tasks.files.control import HOLDS, stop_kind
from mailflow.tasks.files.ledger import IN_FLIGHT, LEDGER_DIR, ledger_state
from mailflow.tasks.files.lifecycle import (
    ABORTED,
    CANCELLED,
    PAUSED,
    PLANNED,
    SCHEDULED,
    SENDING,
    SENT,
    InvalidTransition,
    record_transition,
    state_of,
)
from mailflow.tasks.files.manifest import campaign_dir, chunk_entries

FINAL = ("delivered", "bounced", "suppressed", "failed")  # outcomes nothing more is done for


@dataclass(frozen=True)
class PlannedChunk:
    """One chunk of a plan as the send stage needs it (tasks/files/manifest.py: ChunkEntry)."""

    path: Path
    variant: str
    rows: int
    not_before: datetime | None = None
    held: bool = False  # an A/B remainder, waiting for the winner
    groups: dict[str, int] | None = None  # recipients per provider group, when the manifest has them

    def due(self, now: datetime) -> bool:
        return not self.held and (self.not_before is None or self.not_before <= now)


def planned_chunks(home: Path, campaign_id: str, manifest: dict) -> list[PlannedChunk]:
    folder = campaign_dir(home, campaign_id)
    return [PlannedChunk(folder / e.file, e.variant, e.rows,
                         datetime.fromisoformat(e.not_before).astimezone(UTC) if e.not_before else None, e.held,
                         e.groups)
            for e in chunk_entries(manifest)]


@dataclass(frozen=True)
class Schedule:
    due: list[PlannedChunk]
    waiting: list[PlannedChunk]  # not held, due later
    held: list[PlannedChunk]

    @property
    def next_due(self) -> datetime | None:
        return min((c.not_before for c in self.waiting if c.not_before), default=None)

    def counts(self) -> dict:
        """Chunks due now, waiting for their time (and the first such time) and held: what plan and show print."""
        return {"due": len(self.due), "waiting": len(self.waiting), "held": len(self.held),
                "next_due": self.next_due.isoformat() if self.next_due else None}


def schedule(chunks: Iterable[PlannedChunk], now: datetime) -> Schedule:
    chunks = list(chunks)
    return Schedule([c for c in chunks if c.due(now)], [c for c in chunks if not c.held and not c.due(now)],
                    [c for c in chunks if c.held])


def chunk_ledger(home: Path, campaign_id: str, chunk: PlannedChunk) -> Path:
    """A chunk's ledger shares its file's name (tasks/files/ledger.py: ledger_path)."""
    return home / LEDGER_DIR / campaign_id / f"{chunk.path.stem}.ndjson"


@dataclass(frozen=True)
class Progress:
    """Where a campaign's send stands, from its manifest and ledgers (no warehouse)."""

    planned: int  # recipients of chunks not held
    settled: int  # with a final outcome (FINAL), or in doubt and not to be resent
    deferred: int
    in_doubt: int
    pending: int  # no outcome yet: not reached, stopped by a pause, or in a chunk not yet due
    held: int  # recipients of held chunks (an A/B remainder)
    waiting_chunks: int
    next_due: str | None
    next_retry: str | None  # the earliest time a deferred recipient is due again
    sent_chunks: int = 0  # of the due chunks: every recipient settled
    deferred_chunks: int = 0  # of the due chunks: every recipient has an outcome, some deferred (left for a retry)

    @property
    def complete(self) -> bool:
        return self.settled >= self.planned and self.waiting_chunks == 0


def progress(home: Path, campaign_id: str, chunks: list[PlannedChunk], now: datetime,
             resend_in_doubt: bool = False) -> Progress:
    """Read every ledger of the campaign's chunks (seconds for a million recipients)."""
    plan = schedule(chunks, now)
    planned = settled = deferred = in_doubt = recorded = 0
    retry_times = []
    finished = Counter()  # due chunks with nothing left to send: "sent", or "deferred" when some wait for a retry
    for is_due, chunk in [(True, c) for c in plan.due] + [(False, c) for c in plan.waiting]:
        rows = rows_of(chunk)
        planned += rows
        before = (settled, deferred)
        for state in ledger_state(chunk_ledger(home, campaign_id, chunk)).values():
            recorded += 1
            if state.status in FINAL:
                settled += 1
            elif state.status == "deferred":
                deferred += 1
                retry_times.append(state.retry_at)
            elif state.status == IN_FLIGHT:
                in_doubt += 1
                settled += not resend_in_doubt  # the next send leaves it alone: nothing more will happen
        if is_due and settled - before[0] >= rows:
            finished["sent"] += 1
        elif is_due and settled - before[0] + deferred - before[1] >= rows:
            finished["deferred"] += 1
    next_due = plan.next_due
    return Progress(planned, settled, deferred, in_doubt, max(planned - recorded, 0),
                    sum(rows_of(c) for c in plan.held), len(plan.waiting), next_due.isoformat() if next_due else None,
                    min((t for t in retry_times if t), default=None), finished["sent"], finished["deferred"])


def rows_of(chunk: PlannedChunk) -> int:
    """The manifest's count; a version-1 manifest has none, the file's metadata has it."""
    return chunk.rows if chunk.rows >= 0 else pl.scan_parquet(chunk.path).select(pl.len()).collect().item()


def short_time(moment: str | datetime | None) -> str:
    """2026-12-03T00:00Z: a time for people, in UTC."""
    if moment is None:
        return "-"
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


def refusal(campaign_id: str, state: str | None) -> MailflowError:
    if state == PAUSED:
        return MailflowError(f"campaign {campaign_id!r} is paused; `mailflow campaigns resume {campaign_id}` continues it")
    if state == CANCELLED:
        return MailflowError(f"campaign {campaign_id!r} is cancelled; it cannot be sent")
    return InvalidTransition(campaign_id, state, SENDING)


def begin_send(home: Path, campaign_id: str, chunks: list[PlannedChunk], by: str, now: datetime) -> Schedule:
    """Refuse a paused or cancelled campaign; record `sending` when chunks are due (`scheduled`
    when none is due yet but some will be); return the schedule. A sent campaign whose due
    chunks all have ledgers stays `sent`: running `send` again only confirms it."""
    plan = schedule(chunks, now)
    state = state_of(home, campaign_id)
    if state in (PAUSED, CANCELLED):
        raise refusal(campaign_id, state)
    target, reason = None, ""
    if plan.due and not (state == SENT and all(chunk_ledger(home, campaign_id, c).exists() for c in plan.due)):
        target, reason = SENDING, f"{len(plan.due)} chunks due"
    elif not plan.due and plan.waiting and state == PLANNED:
        target, reason = SCHEDULED, f"{len(plan.waiting)} chunks wait until {short_time(plan.next_due)}"
    if target and target != state:
        try:
            record_transition(home, campaign_id, target, by, reason, allowed_from=(PLANNED, SCHEDULED, SENT, ABORTED))
        except InvalidTransition as exc:  # paused or cancelled a moment ago
            raise refusal(campaign_id, exc.current) from None
    return plan


def finish_send(home: Path, campaign_id: str, chunks: list[PlannedChunk], by: str, now: datetime,
                resend_in_doubt: bool = False) -> Progress:
    """Record `sent` once every recipient not held has a final outcome and no chunk waits; a
    campaign with recipients deferred or pending stays `sending`."""
    done = progress(home, campaign_id, chunks, now, resend_in_doubt)
    if done.complete and state_of(home, campaign_id) == SENDING:
        try:
            record_transition(home, campaign_id, SENT, by, f"{done.settled} recipients have a final outcome",
                              allowed_from=(SENDING,))
        except InvalidTransition:  # paused or cancelled after its last recipient: that move stands
            pass
    return done


def abort_send(home: Path, campaign_id: str, by: str, reason: str) -> None:
    """A preflight or render check stopped the campaign before its first message."""
    try:
        record_transition(home, campaign_id, ABORTED, by, reason, allowed_from=(PLANNED, SCHEDULED, SENDING))
    except InvalidTransition:
        pass


def outcome_of_send(home: Path, campaign_id: str, counts: dict[str, int], done: Progress) -> dict:
    """This run's counts, the campaign's state and where its send stands; `stopped` names a pause or cancel."""
    kind = stop_kind(home, campaign_id)
    return {**counts, "campaign_id": campaign_id, "state": state_of(home, campaign_id),
            "stopped": kind if kind in HOLDS else None, "progress": asdict(done)}
