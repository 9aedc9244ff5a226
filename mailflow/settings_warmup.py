"""The `[warmup]` settings: per pool, a ramp of daily caps per provider group, and the gate that lets it advance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from mailflow.errors import MailflowError
from mailflow.providers import DEFAULT_LIMITS
from mailflow.setting_values import moment, non_negative, one_of, positive_int, positive_number

DEFAULTS: dict[str, Any] = {"window_days": 7, "max_bounce_rate": 0.05, "max_complaint_rate": 0.001, "min_sent": 100,
                            "on_breach": "hold", "pools": {}}
BREACH = ("hold", "step_back")
POOL_KEYS = ("start_date", "start", "factor", "max", "groups")


@dataclass(frozen=True)
class Ramp:
    """One pool's (or `mx`'s) schedule: step n of the ramp allows `start * factor**n` messages a day to
    each provider group (its own start when `groups` names one), counted per UTC day over every sender.
    A group whose cap would reach `max` is warm: from then on it has no cap."""

    pool: str
    start_date: date
    start: int = 200
    factor: float = 1.5
    max: int = 100_000
    groups: dict[str, int] = field(default_factory=dict)  # a group's own day-one cap

    def cap(self, group: str, step: int) -> int | None:
        """Messages the group may get on a day at this step; None once it is warm."""
        first = self.groups.get(group, self.start)
        if first >= self.max or step * math.log(self.factor) >= math.log(self.max / first):
            return None
        return min(self.max - 1, math.floor(first * self.factor ** step + 1e-9))


@dataclass(frozen=True)
class WarmupSettings:
    # The gate: over the last `window_days` of the pool's mail, the ramp advances a step a day only while
    # bounced (synchronous or reported later) / sent and complaints / sent stay under these rates;
    # with fewer than `min_sent` messages in the window there is too little to judge and it advances.
    window_days: int = 7
    max_bounce_rate: float = 0.05
    max_complaint_rate: float = 0.001
    min_sent: int = 100
    on_breach: str = "hold"  # or "step_back": a day over a threshold goes back one step
    pools: dict[str, Ramp] = field(default_factory=dict)

    def ramp(self, transport: str) -> Ramp | None:
        return self.pools.get(transport)


def warmup_settings(tree: dict[str, Any], transports: set[str]) -> WarmupSettings:
    """`transports`: the pools the settings define, and `mx`; a ramp for another name is a typo."""
    unknown = set(tree) - set(DEFAULTS)
    if unknown:
        raise MailflowError(f"settings: unknown key(s) {sorted(unknown)} in [warmup] (known: {', '.join(DEFAULTS)})")
    pools = {}
    for name, spec in dict(tree["pools"]).items():
        if name not in transports:
            raise MailflowError(f"settings: [warmup.pools.{name}] names no SMTP pool (known: {', '.join(sorted(transports))})")
        pools[name] = _ramp(name, dict(spec))
    return WarmupSettings(
        window_days=positive_int(tree["window_days"], "warmup.window_days"),
        max_bounce_rate=non_negative(tree["max_bounce_rate"], "warmup.max_bounce_rate"),
        max_complaint_rate=non_negative(tree["max_complaint_rate"], "warmup.max_complaint_rate"),
        min_sent=positive_int(tree["min_sent"], "warmup.min_sent"),
        on_breach=one_of(tree["on_breach"], BREACH, "warmup.on_breach"),
        pools=pools,
    )


def _ramp(name: str, spec: dict[str, Any]) -> Ramp:
    where = f"warmup.pools.{name}"
    unknown = set(spec) - set(POOL_KEYS)
    if unknown:
        raise MailflowError(f"settings: unknown key(s) {sorted(unknown)} in [{where}] (known: {', '.join(POOL_KEYS)})")
    start_date = moment(spec.get("start_date"), f"{where}.start_date")
    if start_date is None:
        raise MailflowError(f"settings: {where}.start_date is required (the ramp's first day, e.g. 2027-01-04)")
    groups = dict(spec.get("groups", {}))
    if set(groups) - set(DEFAULT_LIMITS):
        raise MailflowError(f"settings: unknown provider group(s) {sorted(set(groups) - set(DEFAULT_LIMITS))} in "
                            f"{where}.groups (known: {', '.join(DEFAULT_LIMITS)})")
    factor = positive_number(spec.get("factor", 1.5), f"{where}.factor")
    if factor < 1:
        raise MailflowError(f"settings: {where}.factor must be 1 or more (the caps grow), not {factor!r}")
    return Ramp(pool=name, start_date=start_date.date(), start=positive_int(spec.get("start", 200), f"{where}.start"),
                factor=factor, max=positive_int(spec.get("max", 100_000), f"{where}.max"),
                groups={g: positive_int(v, f"{where}.groups.{g}") for g, v in groups.items()})
