"""A campaign's lifecycle: its states, the moves allowed between them, and the record of each move.

The truth lives in files under the home, so senders, which never open the warehouse, can read
and move it: `campaigns/<id>/state.json` (the current state, replaced atomically) and
`campaigns/<id>/transitions.ndjson` (every move, appended; `aggregate` loads it into the
warehouse's `campaign_transitions` and sets `campaigns.status` from it). A lock file serialises
the read-check-write of a move, so a pause and a send finishing at the same moment cannot
both win.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailflow.errors import MailflowError
from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.files.ledger import LEDGER_DIR
from mailflow.tasks.files.manifest import MANIFEST, campaign_dir

STATE_FILE = "state.json"
TRANSITIONS_FILE = "transitions.ndjson"
LOCK_FILE = ".lifecycle.lock"

DRAFT, PLANNED, SCHEDULED, SENDING, PAUSED, SENT, CANCELLED, ABORTED = (
    "draft", "planned", "scheduled", "sending", "paused", "sent", "cancelled", "aborted")
STATES = (DRAFT, PLANNED, SCHEDULED, SENDING, PAUSED, SENT, CANCELLED, ABORTED)

# from -> the states it may move to. A state listed as its own target is a move worth recording
# (a re-plan); any other move to the current state is refused as pointless.
TRANSITIONS: dict[str | None, frozenset[str]] = {
    None: frozenset({DRAFT, PLANNED, SCHEDULED}),  # a campaign's first record, written by `plan`
    DRAFT: frozenset({PLANNED, SCHEDULED, CANCELLED}),
    PLANNED: frozenset({PLANNED, SCHEDULED, SENDING, PAUSED, CANCELLED, ABORTED}),
    SCHEDULED: frozenset({PLANNED, SCHEDULED, SENDING, PAUSED, CANCELLED, ABORTED}),
    SENDING: frozenset({PAUSED, SENT, CANCELLED, ABORTED}),
    PAUSED: frozenset({PLANNED, SCHEDULED, SENDING, CANCELLED}),  # resume: back to where it was paused
    SENT: frozenset({SENDING}),  # an A/B remainder released once the winner is picked
    CANCELLED: frozenset(),
    ABORTED: frozenset({PLANNED, SCHEDULED, SENDING, CANCELLED}),  # fixed, then re-planned or sent again
}
# How an error names the refused move: "campaign 'x' is sent; it cannot be paused".
VERBS = {DRAFT: "made a draft", PLANNED: "planned", SCHEDULED: "scheduled", SENDING: "sent", PAUSED: "paused",
         SENT: "marked sent", CANCELLED: "cancelled", ABORTED: "aborted"}


@dataclass(frozen=True)
class Transition:
    """One move, as appended to transitions.ndjson."""

    campaign_id: str
    seq: int  # 1, 2, ... per campaign: what makes a reload of the log change nothing
    at: str  # ISO time, UTC
    from_state: str | None
    to_state: str
    by: str  # who or what moved it: "mailflow campaigns pause (user ana)", "flow send_due (pid 812)"
    reason: str


@dataclass(frozen=True)
class CampaignState:
    """The current state (state.json), with the move that made it."""

    campaign_id: str
    state: str
    since: str | None
    by: str
    reason: str
    seq: int
    resume_to: str | None = None  # while paused: the state a resume returns to


class InvalidTransition(MailflowError):
    """A move the lifecycle does not allow; `current` and `target` say which."""

    def __init__(self, campaign_id: str, current: str | None, target: str):
        self.campaign_id, self.current, self.target = campaign_id, current, target
        where = f"is {current}" if current else "is not planned"
        super().__init__(f"campaign {campaign_id!r} {where}; it cannot be {VERBS[target]}")


def state_path(home: Path, campaign_id: str) -> Path:
    return campaign_dir(home, campaign_id) / STATE_FILE


def transitions_path(home: Path, campaign_id: str) -> Path:
    return campaign_dir(home, campaign_id) / TRANSITIONS_FILE


def current_state(home: Path, campaign_id: str) -> CampaignState | None:
    """The campaign's state; None for a campaign never planned. A campaign planned before the
    lifecycle was recorded is `planned`, or `sending` once it has a ledger."""
    try:
        return CampaignState(**json.loads(state_path(home, campaign_id).read_text(encoding="utf-8")))
    except FileNotFoundError:
        pass
    if not (campaign_dir(home, campaign_id) / MANIFEST).exists():
        return None
    started = any((home / LEDGER_DIR / campaign_id).glob("*.ndjson"))
    return CampaignState(campaign_id, SENDING if started else PLANNED, None, "", "planned before states were recorded", 0)


def state_of(home: Path, campaign_id: str) -> str | None:
    found = current_state(home, campaign_id)
    return found.state if found else None


def record_transition(home: Path, campaign_id: str, to_state: str, by: str, reason: str = "", *,
                      allowed_from: Collection[str | None] | None = None, first: bool = False) -> Transition:
    """Move the campaign to `to_state`, or raise InvalidTransition (one line) when the lifecycle, or
    `allowed_from` (a narrower set of states the caller moves from), does not allow it.

    `by` says who or what moved it (a command and its user, or a flow and its process);
    `reason` why. The check and the write happen under the campaign's lock. `first`: the caller
    (a campaign's first plan) has just written the manifest of a campaign that had no state, so a
    missing state.json means none, not a campaign planned before states were recorded.
    """
    if to_state not in STATES:
        raise ValueError(f"{to_state!r} is not a campaign state")
    if to_state not in TRANSITIONS[None] and current_state(home, campaign_id) is None:
        raise InvalidTransition(campaign_id, None, to_state)  # before the lock, which would make its folder
    with _locked(home, campaign_id):
        new = first and not state_path(home, campaign_id).exists()
        current = None if new else current_state(home, campaign_id)
        from_state = current.state if current else None
        if to_state not in TRANSITIONS[from_state] or (allowed_from is not None and from_state not in allowed_from):
            raise InvalidTransition(campaign_id, from_state, to_state)
        move = Transition(campaign_id, (current.seq if current else 0) + 1, datetime.now(UTC).isoformat(),
                          from_state, to_state, by, reason)
        _append(transitions_path(home, campaign_id), asdict(move))
        resume_to = (current.resume_to if from_state == PAUSED else from_state) if to_state == PAUSED else None
        state = CampaignState(campaign_id, to_state, move.at, by, reason, move.seq, resume_to)
        atomic_write(state_path(home, campaign_id), lambda p: p.write_text(json.dumps(asdict(state)), encoding="utf-8"))
    return move


def transitions(home: Path, campaign_id: str) -> list[Transition]:
    """Every recorded move of the campaign, oldest first (a torn last line is skipped)."""
    path = transitions_path(home, campaign_id)
    if not path.exists():
        return []
    moves = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            moves.append(Transition(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return moves


def campaign_ids(home: Path) -> list[str]:
    """Every campaign with a folder under the home that has a manifest or a state."""
    root = home / "campaigns"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).exists() or (p / STATE_FILE).exists())


@contextmanager
def _locked(home: Path, campaign_id: str) -> Iterator[None]:
    folder = campaign_dir(home, campaign_id)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / LOCK_FILE).open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # moves are rare and quick: waiting is right
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _append(path: Path, record: dict) -> None:
    """One whole line, written through and synced: a move must survive the process that made it."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, json.dumps(record, separators=(",", ":")).encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
