"""Warm-up's files under the home: each pool's ramp (the step of each judged day) and its per-day counters.

`warmup/<pool>/ramp.ndjson` holds one line per day the gate judged: the step that day runs at and why.
`warmup/<pool>/<YYYY-MM-DD>/<group>.count` is how many messages every sender together took of the
group's cap that UTC day: a number read and rewritten under an exclusive lock (fcntl), so concurrent
sending processes never take more than the cap between them.
"""

from __future__ import annotations

import fcntl
import json
import os
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

WARMUP_DIR = "warmup"
_WIDTH = 20  # a counter is always written as this many digits: a rewrite never leaves a longer tail


@dataclass(frozen=True)
class RampDay:
    day: str  # ISO date (UTC)
    step: int
    verdict: str  # start | advance | hold | step_back | not judged (the send stage's view of a day nobody judged yet)
    why: str = ""


def pool_dir(home: Path, pool: str) -> Path:
    return home / WARMUP_DIR / pool


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def next_day(moment: datetime) -> datetime:
    """The start of the next UTC day: when a recipient over today's cap is due again."""
    return datetime.combine(day_of(moment) + timedelta(days=1), datetime.min.time(), UTC)


@contextmanager
def _locked(path: Path, mode: int = os.O_RDWR | os.O_CREAT):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, mode, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _days(fd: int) -> list[RampDay]:
    size = os.fstat(fd).st_size
    days = []
    for line in os.pread(fd, size, 0).splitlines():
        try:
            days.append(RampDay(**json.loads(line)))
        except (ValueError, TypeError):
            continue  # a torn last line: that day is judged again
    return days


def ramp_days(home: Path, pool: str) -> list[RampDay]:
    path = pool_dir(home, pool) / "ramp.ndjson"
    if not path.exists():
        return []
    with _locked(path) as fd:
        return _days(fd)


def step_on(days: list[RampDay], day: date) -> RampDay:
    """The step a day runs at: as judged, or, before anyone judged it, the last judged day's (the ramp
    never advances unjudged), or the first step."""
    earlier = [d for d in days if d.day <= day.isoformat()]
    if not earlier:
        return RampDay(day.isoformat(), 0, "not judged", "no day judged yet: the first step")
    last = max(earlier, key=lambda d: d.day)
    if last.day == day.isoformat():
        return last
    return RampDay(day.isoformat(), last.step, "not judged", f"not judged yet today: {last.day}'s step holds")


def judge_day(home: Path, pool: str, day: date, decide) -> RampDay:
    """The day's step, recorded once: `decide(last judged day or None)` returns the RampDay when the day
    is judged first; later calls (any process) read what was recorded."""
    with _locked(pool_dir(home, pool) / "ramp.ndjson") as fd:
        days = _days(fd)
        for known in days:
            if known.day == day.isoformat():
                return known
        earlier = [d for d in days if d.day < day.isoformat()]
        judged = decide(max(earlier, key=lambda d: d.day) if earlier else None)
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, json.dumps(asdict(judged)).encode() + b"\n")
        return judged


class DailyCounter:
    """Messages taken of a pool's caps per UTC day and provider group, shared by every process."""

    def __init__(self, home: Path, pool: str):
        self.folder = pool_dir(home, pool)

    def path(self, day: date, group: str) -> Path:
        return self.folder / day.isoformat() / f"{group}.count"

    def take(self, day: date, group: str, cap: int) -> bool:
        """Take one message of the cap; False (nothing taken) when the cap is used up."""
        with _locked(self.path(day, group)) as fd:
            used = _read(fd)
            if used >= cap:
                return False
            os.pwrite(fd, f"{used + 1:0{_WIDTH}d}".encode(), 0)
            return True

    def give_back(self, day: date, group: str) -> None:
        """A taken message that never reached a server (a suspended provider, a relay down, a bad address)."""
        with _locked(self.path(day, group)) as fd:
            os.pwrite(fd, f"{max(_read(fd) - 1, 0):0{_WIDTH}d}".encode(), 0)

    def used(self, day: date, group: str) -> int:
        path = self.path(day, group)
        if not path.exists():
            return 0
        with _locked(path) as fd:
            return _read(fd)


def _read(fd: int) -> int:
    text = os.pread(fd, _WIDTH, 0).strip()
    return int(text) if text.isdigit() else 0
