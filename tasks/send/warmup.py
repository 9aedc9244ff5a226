"""Warm-up at send time: each message takes one of today's cap of its provider group, shared through
counter files by every sender of the pool; a recipient over the cap is deferred to the next UTC day."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

from mailflow.settings import Settings
from mailflow.settings_warmup import Ramp
from mailflow.tasks.deliver.smtp import Cause, Outcome
from mailflow.tasks.files.warmup import DailyCounter, RampDay, day_of, next_day, ramp_days, step_on
from mailflow.tasks.send.schedule import short_time

WARMUP_REASON = "warmup"  # the ledger's reason for a recipient deferred by a cap: it never expires


class WarmupCaps:
    """One send's view of its pool's ramp. The day's step is the one judged (by plan or aggregate), else the
    last judged day's: the send stage never opens the warehouse, so it never advances the ramp itself."""

    def __init__(self, home: Path, ramp: Ramp, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.home, self.ramp, self.clock = home, ramp, clock
        self.counter = DailyCounter(home, ramp.pool)
        self._steps: dict[date, RampDay] = {}
        self._taken: dict[int, tuple[date, str]] = {}

    @classmethod
    def for_send(cls, settings: Settings, transport: str,
                 clock: Callable[[], datetime] | None = None) -> WarmupCaps | None:
        ramp = settings.warmup.ramp(transport)
        if ramp is None:
            return None
        return cls(settings.home, ramp, clock or (lambda: datetime.now(UTC)))

    def step(self, day: date) -> RampDay:
        if day not in self._steps:
            self._steps[day] = step_on(ramp_days(self.home, self.ramp.pool), day)
        return self._steps[day]

    def take(self, row: dict, group: str) -> Outcome | None:
        """None: the recipient may go (one message of today's cap taken for it); else its deferral."""
        now = self.clock()
        day = day_of(now)
        cap = self.ramp.cap(group, self.step(day).step)
        if cap is None:
            return None
        if self.counter.take(day, group, cap):
            self._taken[row["subscriber_id"]] = (day, group)
            return None
        return Outcome("deferred", None, None, f"not sent: warm-up cap of pool {self.ramp.pool!r} for {group} used up "
                       f"today ({cap}); due again {short_time(next_day(now))}", cause=Cause.WARMUP)

    def settle(self, row: dict, outcome: Outcome) -> None:
        """A message that took a place of the cap but never reached a server gives it back."""
        taken = self._taken.pop(row["subscriber_id"], None)
        if taken is not None and never_reached(outcome):
            self.counter.give_back(*taken)


def never_reached(outcome: Outcome) -> bool:
    return (outcome.status == "failed" or outcome.cause is Cause.SUSPENDED
            or (outcome.status == "deferred" and outcome.unsent))
