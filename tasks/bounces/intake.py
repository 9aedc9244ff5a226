"""Bounce intake: classified messages to NDJSON rows, bounce events in the event logs, and suppressions."""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from mailflow.event_line import event_line
from mailflow.tasks.bounces.mailto import unsubscribe_row
from mailflow.tasks.bounces.mapping import SendIndex, bare_address
from mailflow.tasks.bounces.message import classify_message
from mailflow.tasks.files.atomic import fsync_dir
from mailflow.tasks.files.suppress import SuppressionLog
from mailflow.tasks.track.events import events_dir

WRITER = "bounces"
EVENT_TYPES = {"hard": "bounce", "soft": "bounce", "complaint": "complaint", "auto_reply": "auto_reply"}
# Soft bounces are left to aggregate's count-with-decay rule; these stop mail to the address at once.
SUPPRESS_AT_ONCE = frozenset({"hard", "complaint"})
_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)


def message_rows(raw: bytes, source: str, index: SendIndex | None) -> list[dict]:
    """DESIGN "Bounce classification" objects for one message: one per bounced recipient, with campaign_id and
    subscriber_id when it maps to a send (`"unmapped": true` when it does not), or one `not_bounce` object
    (with `"action": "unsubscribe"` for a verified mailto unsubscribe)."""
    unsubscribe = unsubscribe_row(raw, source, index)
    if unsubscribe is not None:
        return [unsubscribe]
    rows = []
    for result in classify_message(raw, source) or ():
        row = {"source": source, "recipient": result.recipient, "kind": result.kind, "reason": result.reason,
               "status": result.status, "smtp_code": result.smtp_code, "diagnostic": result.diagnostic}
        if result.delayed:
            row["delayed"] = True  # a delay notice: still being tried, so aggregate's soft-bounce rule does not count it
        if result.kind in EVENT_TYPES:
            match = index.match(result.return_path_token, result.original_headers, result.recipient) if index else None
            if match is None:
                row["unmapped"] = True
            else:
                row |= {"campaign_id": match.campaign_id, "subscriber_id": match.subscriber_id,
                        "variant": match.variant, "mapped_by": match.via}
        rows.append(row)
    return rows or [{"source": source, "recipient": None, "kind": "not_bounce", "reason": "unknown", "status": None,
                     "smtp_code": None, "diagnostic": None}]


def event_id(raw: bytes, row: dict) -> str:
    """The same message read twice (a re-run, a mailbox fetched again) gives the same id, so aggregate's
    event-id dedupe counts it once; two recipients of one report differ."""
    digest = hashlib.sha256(raw).digest()
    key = b"\0".join([b"bounce", digest, str(row.get("recipient") or "").lower().encode(),
                          (row.get("action") or row["kind"]).encode()])
    return "b" + hashlib.sha256(key).hexdigest()[:31]


class BounceRecorder:
    """Writes what `message_rows` found: events to `home/events/bounces-<pid>-<n>.ndjson` (one file per run,
    fsynced by `sync` and on close) and hard bounces, complaints and mailto unsubscribes to this writer's
    suppression log."""

    def __init__(self, home: Path):
        self.home = home
        self.suppressions = SuppressionLog(home, WRITER)
        self.counts: Counter[str] = Counter()
        self.path: Path | None = None
        self._fd: int | None = None
        self._log_dir_synced = False

    def record(self, raw: bytes, rows: list[dict]) -> None:
        for row in rows:
            if row.get("action") == "unsubscribe":
                self._unsubscribe(raw, row)
                continue
            kind = row["kind"]
            if kind not in EVENT_TYPES:
                continue
            event = {"event_id": event_id(raw, row), "type": EVENT_TYPES[kind],
                     "campaign_id": row.get("campaign_id"), "subscriber_id": row.get("subscriber_id"),
                     "variant": row.get("variant"), "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
                     "kind": kind, "reason": row["reason"], "status": row["status"], "smtp_code": row["smtp_code"],
                     "diagnostic": row["diagnostic"], "source": row["source"], "unmapped": row.get("unmapped", False)}
            if row.get("delayed"):
                event["delayed"] = True
            self._write(event_line(event))
            self.counts[event["type"]] += 1
            if kind in SUPPRESS_AT_ONCE and row.get("recipient"):
                self.suppressions.append(bare_address(str(row["recipient"])),
                                         "complaint" if kind == "complaint" else f"bounce:{row['reason']}",
                                         row.get("campaign_id") or WRITER)
                self.counts["suppressed"] += 1

    def _unsubscribe(self, raw: bytes, row: dict) -> None:
        """As the tracking service's /u does: an `unsubscribe` event (method `mailto`) and cause `unsubscribe`."""
        event = {"event_id": event_id(raw, row), "type": "unsubscribe", "campaign_id": row["campaign_id"],
                 "subscriber_id": row["subscriber_id"], "variant": row.get("variant"),
                 "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"), "method": "mailto", "source": row["source"]}
        self._write(event_line(event))
        self.counts["unsubscribe"] += 1
        if row.get("recipient"):  # without it (chunk file gone) the event alone suppresses, by subscriber id, at aggregate
            self.suppressions.append(bare_address(str(row["recipient"])), "unsubscribe", row["campaign_id"])
            self.counts["suppressed"] += 1

    def sync(self) -> None:
        """Everything recorded so far on disk: the event file and the suppression log (once per batch of messages)."""
        if self._fd is not None:
            os.fsync(self._fd)
        try:
            fd = os.open(self.suppressions.path, os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing suppressed yet
        try:
            os.fsync(fd)  # the file's data, whichever descriptor wrote it
        finally:
            os.close(fd)
        if not self._log_dir_synced:  # the log file may be new: its name too
            fsync_dir(self.suppressions.path.parent)
            self._log_dir_synced = True

    def _write(self, line: bytes) -> None:
        if self._fd is None:
            self._open()
        view = memoryview(line)
        while view:
            view = view[os.write(self._fd, view):]

    def _open(self) -> None:
        folder = events_dir(self.home)
        folder.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:  # a pid seen before never appends to an old file
            path = folder / f"{WRITER}-{os.getpid()}-{n}.ndjson"
            try:
                self._fd = os.open(path, _FLAGS, 0o600)
                self.path = path
                fsync_dir(folder)  # the new file's name survives a crash too
                return
            except FileExistsError:
                n += 1

    def close(self) -> None:
        if self._fd is not None:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> BounceRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

