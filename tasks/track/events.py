"""The service's event log: one NDJSON file per process, rotated; each event written before its answer, fsynced soon after."""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from mailflow.event_line import event_line
from mailflow.tasks.files.atomic import new_log_file

# An acknowledged event must survive the process being killed (SIGKILL, OOM): os.write hands it
# to the kernel before the answer goes out, and the kernel keeps it whatever becomes of the
# process. Surviving the machine's power needs fsync, which costs milliseconds: it runs on a
# thread of its own every `sync_seconds` (and on rotation and shutdown), so the disk lags the
# answers by a bounded delay. An unsubscribe waits for it (`durable=True`); concurrent waiters
# share one fsync (group commit). One os.write per event costs about 3 µs of a request's 65 µs
# here (profiled through the app), so coalescing writes per loop tick would save little.


def events_dir(home: Path) -> Path:
    return home / "events"


class EventLog:
    """`await log.write({"type": "open", ...}, durable=False)` appends one line to
    `home/events/<writer>-<pid>-<n>.ndjson`, adding `event_id` and `occurred_at` when absent."""

    def __init__(self, home: Path, writer: str = "track", *, rotate_seconds: float = 300.0,
                 rotate_bytes: int = 64 * 2**20, sync_seconds: float = 0.5, clock=time.monotonic):
        self.dir, self.writer = events_dir(home), writer
        self.rotate_seconds, self.rotate_bytes, self.sync_seconds, self.clock = rotate_seconds, rotate_bytes, sync_seconds, clock
        self.path: Path | None = None
        self.counts: Counter[str] = Counter()  # events written, by type
        self.errors = 0
        self._fd: int | None = None
        self._size, self._opened, self._next_n = 0, 0.0, 0
        self._written = self._synced = 0  # sequence numbers of events written / known on disk
        self._unsynced_since: float | None = None  # when the oldest event not known on disk was written
        self._syncing: asyncio.Future | None = None
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="event-sync")  # one thread: fsyncs and closes in order
        self._task: asyncio.Task | None = None
        # Unique across processes and restarts without coordination: 40 random bits per log, then a counter
        self._ids, self._id_prefix = itertools.count(1), os.urandom(5).hex()

    def start(self) -> None:
        """The background fsync (and rotation by age), on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._background())

    async def write(self, event: dict, durable: bool = False) -> None:
        if "event_id" not in event or "occurred_at" not in event:  # first in the line, for people reading it
            event = {"event_id": f"{self._id_prefix}{next(self._ids):x}",
                     "occurred_at": datetime.now(UTC).isoformat(timespec="milliseconds"), **event}
        line = event_line(event)  # its other fields under `data` (mailflow/event_line.py)
        seq = self._append(line)
        self.counts[event.get("type") or "unknown"] += 1
        if durable:
            await self.sync(seq)

    def _append(self, line: bytes) -> int:
        try:
            if self._fd is None or self._size >= self.rotate_bytes or self.clock() - self._opened >= self.rotate_seconds:
                self._rotate()
            view = memoryview(line)
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            self.errors += 1
            if self._fd is not None:  # a part of the line may be in: it stays the file's unfinished last line
                self._close_later()
            raise
        self._size += len(line)
        self._written += 1
        if self._unsynced_since is None:
            self._unsynced_since = self.clock()
        return self._written

    def _rotate(self) -> None:
        """Close the current file (fsynced, on the sync thread, after any fsync queued before) and begin the next."""
        if self._fd is not None:
            self._close_later()
        self.dir.mkdir(parents=True, exist_ok=True)
        self._fd, path, self._next_n = new_log_file(self.dir, self.writer, self._next_n)
        self.path, self._size, self._opened = path, 0, self.clock()

    def _close_later(self) -> None:
        self._pool.submit(_sync_and_close, self._fd).add_done_callback(self._count_failure)
        self._fd, self.path = None, None

    def _count_failure(self, future) -> None:
        if future.exception() is not None:
            self.errors += 1

    async def sync(self, seq: int | None = None) -> None:
        """Return once every event up to `seq` (default: all written) is on disk."""
        seq = self._written if seq is None else seq
        while self._synced < seq:
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._sync_once())
            await asyncio.shield(self._syncing)

    async def _sync_once(self) -> None:
        target, fd, started = self._written, self._fd, self.clock()
        try:
            if fd is not None:
                await asyncio.get_running_loop().run_in_executor(self._pool, os.fsync, fd)
            else:  # rotated away: the close job queued before this one fsyncs it
                await asyncio.get_running_loop().run_in_executor(self._pool, lambda: None)
        except OSError:
            self.errors += 1
            raise
        finally:
            self._syncing = None
        self._synced = max(self._synced, target)
        self._unsynced_since = None if self._synced >= self._written else started

    def lag(self) -> float:
        """Seconds the oldest event not yet known to be on disk has waited (0 when none)."""
        return 0.0 if self._unsynced_since is None else max(0.0, self.clock() - self._unsynced_since)

    @property
    def unsynced(self) -> int:
        return self._written - self._synced

    async def _background(self) -> None:
        while True:
            await asyncio.sleep(self.sync_seconds)
            try:
                if self._fd is not None and self.clock() - self._opened >= self.rotate_seconds:
                    self._close_later()  # idle past its age: closed; the next event opens a new file
                if self._written > self._synced:
                    await self.sync()
            except OSError:
                continue  # counted in errors; tried again next round

    async def close(self) -> None:
        """Stop the background sync; everything written is on disk and the file closed when this returns."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        fd, self._fd, self.path = self._fd, None, None
        loop = asyncio.get_running_loop()
        if fd is not None:
            await loop.run_in_executor(self._pool, _sync_and_close, fd)
        else:
            await loop.run_in_executor(self._pool, lambda: None)  # closes queued before are done
        self._synced = self._written
        self._unsynced_since = None
        self._pool.shutdown(wait=True)


def _sync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
