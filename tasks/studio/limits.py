"""Login attempts per client IP and per user name in a sliding window (memory only), and the lockout rule."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace

from mailflow.tasks.studio.users import User

MAX_KEYS = 50_000  # keys kept; beyond it the idle ones are dropped (a spray of names costs bounded memory)


class Window:
    """`allow(key)`: at most `limit` attempts per key in the last `seconds`; a refused attempt is not counted."""

    def __init__(self, limit: int, seconds: float, clock: Callable[[], float] = time.time):
        self.limit, self.seconds, self.clock = limit, seconds, clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        now = self.clock()
        hits = self._hits.setdefault(key, deque())
        while hits and hits[0] <= now - self.seconds:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        if len(self._hits) > MAX_KEYS:
            self._prune(now)
        return True

    def _prune(self, now: float) -> None:
        for key in [k for k, h in self._hits.items() if not h or h[-1] <= now - self.seconds]:
            del self._hits[key]


def failed(user: User, now: float, failures: int, lock_seconds: float) -> User:
    """One more wrong password or code; the `failures`-th in a row locks the user for `lock_seconds`."""
    count = user.failures + 1
    if count >= failures:
        return replace(user, failures=0, locked_until=now + lock_seconds)
    return replace(user, failures=count)


def locked(user: User, now: float) -> bool:
    return user.locked_until > now
