"""The send ledger: one NDJSON record per recipient outcome, appended, flushed and fsynced in batches."""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailflow.errors import MailflowError

LEDGER_DIR = "ledger"


@dataclass(frozen=True)
class LedgerRecord:
    campaign_id: str
    subscriber_id: int
    variant: str
    chunk_id: int
    status: str
    smtp_code: int | None
    enhanced_status: str | None
    detail: str
    attempt: int
    kind: str | None = None  # bounce taxonomy (DESIGN.md): hard | soft for bounced and deferred outcomes
    reason: str | None = None  # bounce taxonomy reason, e.g. user_unknown, rate_limited
    provider: str = ""  # the provider group of the recipient's domain (gmail, microsoft, yahoo, other)
    retry_at: str | None = None  # ISO time a deferred recipient is due again
    unsent: bool = False  # deferred before any server saw the message: the next send takes it at once


def ledger_path(home: Path, campaign_id: str, chunk_id: int) -> Path:
    return home / LEDGER_DIR / campaign_id / f"chunk-{chunk_id:05d}.ndjson"


IN_FLIGHT = "in_flight"


@dataclass(frozen=True)
class RecipientState:
    """What a chunk's ledger says of one recipient: its last record, and when it was first tried."""

    status: str
    attempt: int
    retry_at: str | None
    first_at: str | None
    unsent: bool = False  # a ledger written before records carried it: False, as then
    reason: str | None = None  # the last record's (a warm-up deferral never expires: tasks/send/warmup.py)


def ledger_state(path: Path) -> dict[int, RecipientState]:
    """The last record of each recipient of this ledger file.

    `in_flight` as the last status means the process died while that message was on the
    wire: it may or may not have been delivered. A torn last line (the process died
    mid-write) is ignored, which is right since its record never became whole.
    """
    seen: dict[int, RecipientState] = {}
    if not path.exists():
        return seen
    with path.open("rb") as fh:
        for line in fh:
            try:
                record = json.loads(line)
                sid = record["subscriber_id"]
                first = seen[sid].first_at if sid in seen else record.get("logged_at")
                seen[sid] = RecipientState(record["status"], record.get("attempt", 1), record.get("retry_at"), first,
                                           record.get("unsent") is True, record.get("reason"))
            except (ValueError, KeyError, TypeError):
                continue
    return seen


def logged_subscribers(path: Path) -> dict[int, str]:
    """The last status logged for each recipient of this ledger file."""
    return {sid: state.status for sid, state in ledger_state(path).items()}


class ChunkBusy(MailflowError):
    """The chunk's ledger is locked by another sender."""


class LedgerWriter:
    """Appends records to one chunk's ledger; holds an exclusive lock so two senders never share it."""

    def __init__(self, path: Path, batch: int = 200):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path, self.batch = path, batch
        self._fh = path.open("ab")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise ChunkBusy(f"{path}: another process is sending this chunk") from None
        self._pending = 0
        self._seq = 0
        self._end_torn_line()

    def _end_torn_line(self) -> None:
        """A killed writer may have left half a record: end it so the next record starts clean."""
        size = self.path.stat().st_size
        if size:
            with self.path.open("rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    self._fh.write(b"\n")
                    self.sync()

    def append(self, record: LedgerRecord) -> None:
        """Write one record through to the OS at once (a killed process loses nothing written);
        fsync, which also survives a power cut, runs once per batch."""
        self._seq += 1
        row = record.__dict__ | {"logged_at": datetime.now(UTC).isoformat(), "seq": self._seq}
        self._fh.write(json.dumps(row, separators=(",", ":")).encode() + b"\n")
        self._fh.flush()
        self._pending += 1
        if self._pending >= self.batch:
            self.sync()

    def mark_in_flight(self, record: LedgerRecord) -> None:
        """Log a message as on the wire, before it is sent."""
        self.append(record)

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._pending = 0

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
