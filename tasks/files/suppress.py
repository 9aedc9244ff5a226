"""Send-time suppression: the warehouse snapshot plus the suppression logs written since.

The send stage never opens the warehouse (DESIGN.md principle 1). Plan and aggregate write
a snapshot of every address that must not be mailed (`suppressions/snapshot.parquet`);
whoever suppresses an address meanwhile — the sender on a hard bounce, the tracking
service on an unsubscribe, bounce intake on a complaint — appends a line to its own file
under `suppressions/log/`. A sender reads the snapshot once and the logs' new bytes at most
every `refresh` seconds, so an unsubscribe stops later mail within seconds.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from mailflow.tasks.files.atomic import atomic_write

SNAPSHOT = "snapshot.parquet"
OFFSETS = "mailflow.loaded_log_bytes"


def suppression_dir(home: Path) -> Path:
    return home / "suppressions"


def host_tag() -> str:
    """This machine's name, kept to characters safe in a file name."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname()) or "host"


def write_snapshot(home: Path, frame: pl.DataFrame, loaded: dict[str, int] | None = None) -> Path:
    """Replace the snapshot atomically with `frame` (columns email, cause).

    `loaded` maps each suppression log to the bytes of it the warehouse had loaded when the
    frame was read: readers skip those, so a line already folded in (and perhaps undone
    since, e.g. a re-subscription) is not applied again. It travels in the file's metadata,
    so snapshot and offsets are replaced together.
    """
    path = suppression_dir(home) / SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    logs = suppression_dir(home) / "log"
    offsets = {p: n for p, n in (loaded or {}).items() if Path(p).parent == logs}
    return atomic_write(path, lambda tmp: frame.select("email", "cause").write_parquet(
        tmp, metadata={OFFSETS: json.dumps(offsets)}))


class SuppressionLog:
    """Appends suppressions to this writer's own log file (one file per writer, never rewritten)."""

    def __init__(self, home: Path, writer: str):
        # The host too: senders on several machines share the home, and a pid is only unique on one of them.
        self.path = suppression_dir(home) / "log" / f"{writer}-{host_tag()}-{os.getpid()}.ndjson"

    def append(self, email: str, cause: str, source: str, durable: bool = False) -> None:
        """`durable`: on disk (fsynced) when it returns, as an acknowledged unsubscribe must be."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = {"email": email, "cause": cause, "source": source,
                "at": datetime.now(UTC).isoformat()}
        with self.path.open("ab") as fh:  # whole line in one write: readers never see half of it
            fh.write(json.dumps(line, separators=(",", ":")).encode() + b"\n")
            if durable:
                fh.flush()
                os.fsync(fh.fileno())


class SuppressionCheck:
    """Answers "may this address be mailed now?" from the snapshot and the logs."""

    _shared: dict[Path, SuppressionCheck] = {}

    def __init__(self, home: Path, refresh: float = 2.0, clock=time.monotonic):
        self.dir, self.refresh, self.clock = suppression_dir(home), refresh, clock
        self.causes: dict[str, str] = {}
        self._offsets: dict[Path, int] = {}
        self._next = 0.0
        self._snapshot_id: tuple | None = None
        self._load_snapshot()

    @classmethod
    def shared(cls, home: Path, refresh: float = 2.0) -> SuppressionCheck:
        """One per home and process: a sending process reads a large snapshot once, not once per chunk,
        and again only when plan or aggregate has replaced it."""
        check = cls._shared.get(home)
        if check is None or check._snapshot_id != file_id(check.dir / SNAPSHOT):
            check = cls._shared[home] = cls(home)
        check.refresh = refresh
        check._next = 0.0  # a new chunk starts from the logs as they are now
        return check

    def _load_snapshot(self) -> None:
        snapshot = self.dir / SNAPSHOT
        self._snapshot_id = file_id(snapshot)
        if self._snapshot_id is not None:
            frame = pl.read_parquet(snapshot, columns=["email", "cause"])
            self.causes.update(zip(frame["email"].to_list(), frame["cause"].to_list()))
            loaded = json.loads(pl.read_parquet_metadata(snapshot).get(OFFSETS, "{}"))
            self._offsets.update({Path(p): n for p, n in loaded.items()})

    def cause(self, email: str) -> str | None:
        """Why `email` is suppressed, or None when it may be mailed."""
        if self.clock() >= self._next:
            self._read_logs()
            self._next = self.clock() + self.refresh
        return self.causes.get(email)

    def _read_logs(self) -> None:
        for path in sorted((self.dir / "log").glob("*.ndjson")):
            start = self._offsets.get(path, 0)
            try:
                if path.stat().st_size <= start:
                    continue
                with path.open("rb") as fh:
                    fh.seek(start)
                    data = fh.read()
            except FileNotFoundError:
                continue
            whole = data[: data.rfind(b"\n") + 1]  # a line still being written waits for the next read
            self._offsets[path] = start + len(whole)
            for line in whole.splitlines():
                try:
                    record = json.loads(line)
                    self.causes.setdefault(record["email"], record["cause"])
                except (ValueError, KeyError, TypeError):
                    continue


def file_id(path: Path) -> tuple | None:
    """A file's identity (inode, mtime, size): a change means it was replaced or grew; None when it is missing."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size
