"""Warm-up at plan time: judge the pool's day by its bounce and complaint rates, and spread the audience over days by the caps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from mailflow.errors import MailflowError
from mailflow.providers import OTHER
from mailflow.settings_warmup import Ramp, WarmupSettings
from mailflow.tasks.core.sqlfiles import q
from mailflow.tasks.core.warehouse import inputs
from mailflow.tasks.files.warmup import DailyCounter, RampDay, day_of, judge_day
from mailflow.tasks.plan.chunks import provider_frame

MAX_DAYS = 366  # a ramp that would need longer than a year to send a campaign is a settings mistake, said as such


@dataclass(frozen=True)
class GateReading:
    """The pool's mail over the gate's window."""

    sent: int
    bounced: int
    complained: int


def read_gate(con: duckdb.DuckDBPyConnection, pool: str, window_days: int, now: datetime) -> GateReading:
    row = con.execute(q("warmup_gate"), {"pool": pool, "since": now - timedelta(days=window_days)}).fetchone()
    return GateReading(*(int(v or 0) for v in row))


def verdict(reading: GateReading, warmup: WarmupSettings) -> tuple[str, str]:
    """advance, or the breach rule (hold or step_back) with the rates that broke it, in words for `plan`."""
    window = f"last {warmup.window_days} days"
    if reading.sent < warmup.min_sent:
        return "advance", f"{reading.sent} sent in the {window}: too few to judge (warmup.min_sent {warmup.min_sent})"
    bounce, complaint = reading.bounced / reading.sent, reading.complained / reading.sent
    over = []
    if bounce > warmup.max_bounce_rate:
        over.append(f"bounce rate {bounce:.2%} over {warmup.max_bounce_rate:.2%}")
    if complaint > warmup.max_complaint_rate:
        over.append(f"complaint rate {complaint:.3%} over {warmup.max_complaint_rate:.3%}")
    if over:
        return warmup.on_breach, "; ".join(over) + f" ({window}, {reading.sent} sent)"
    return "advance", f"bounce rate {bounce:.2%}, complaint rate {complaint:.3%} ({window}, {reading.sent} sent)"


def judge(con: duckdb.DuckDBPyConnection, home: Path, warmup: WarmupSettings, ramp: Ramp, now: datetime) -> RampDay:
    """Today's step of the ramp, judged once a day (by the first plan or aggregate of the day) and recorded:
    a step up from the last judged day while the gate's rates are under the thresholds, otherwise held
    (or one back). Before the ramp's start date it sits at its first step, unrecorded."""
    day = day_of(now)
    if day < ramp.start_date:
        return RampDay(day.isoformat(), 0, "start", f"the ramp starts on {ramp.start_date.isoformat()}")

    def decide(last: RampDay | None) -> RampDay:
        if last is None:
            return RampDay(day.isoformat(), 0, "start", "the ramp's first day")
        said, why = verdict(read_gate(con, ramp.pool, warmup.window_days, now), warmup)
        step = last.step + 1 if said == "advance" else last.step if said == "hold" else max(last.step - 1, 0)
        return RampDay(day.isoformat(), step, said, why)

    return judge_day(home, ramp.pool, day, decide)


def spread(ramp: Ramp, group: str, size: int, step: int, used_today: int) -> list[int]:
    """Recipients of a group per day, today first: what is left of today's cap, then a later day's cap
    each (the ramp assumed to advance a step a day; if it holds, the send defers the excess a day)."""
    days: list[int] = []
    left = size
    while left > 0:
        cap = ramp.cap(group, step + len(days))
        if cap is None:  # warm from this day on: everyone left goes that day
            days.append(left)
            break
        room = max(cap - (used_today if not days else 0), 0)
        days.append(min(room, left))
        left -= days[-1]
        if len(days) > MAX_DAYS:
            raise MailflowError(f"warm-up of {ramp.pool!r}: {size} {group} recipients need over {MAX_DAYS} days at "
                                f"its caps (raise warmup.pools.{ramp.pool}.start or factor, or mail fewer)")
    return days


def plan_warmup(con: duckdb.DuckDBPyConnection, home: Path, warmup: WarmupSettings, transport: str, campaign_id: str,
                now: datetime) -> dict | None:
    """Stage plan_warmup (who waits for which day) for the plan's chunking; return what `plan` says of it,
    or None when the transport does not warm up."""
    ramp = warmup.ramp(transport)
    if ramp is None:
        con.execute(q("clear_plan_warmup"))
        return None
    today = judge(con, home, warmup, ramp, now)
    counter = DailyCounter(home, ramp.pool)
    day = day_of(now)
    rows, groups = [], {}
    with inputs(con, provider_domains=provider_frame()):
        sizes = sorted(con.execute(q("warmup_group_sizes")).fetchall(), key=lambda row: (row[0] == OTHER, row[0]))
        for group, size in sizes:
            used = counter.used(day, group)
            days = spread(ramp, group, size, today.step, used)
            first = days[0]
            for offset, count in enumerate(days[1:], start=1):
                rows.append((group, first, first + count, day_start(day, offset)))
                first += count
            last = day + timedelta(days=len(days) - 1)
            groups[group] = {"cap": ramp.cap(group, today.step), "used": used, "today": days[0],
                             "later": size - days[0], "last_day": last.isoformat()}
        frame = pl.DataFrame(rows, orient="row", schema={"provider": pl.String(), "first_rank": pl.Int64(),
                                                         "end_rank": pl.Int64(), "not_before": pl.Datetime("us", "UTC")})
        with inputs(con, warmup_days=frame):
            con.execute(q("stage_plan_warmup"), {"campaign_id": campaign_id})
    return {"pool": ramp.pool, "day": today.day, "step": today.step, "verdict": today.verdict, "why": today.why,
            "groups": groups}


def day_start(day: date, offset: int) -> datetime:
    return datetime.combine(day + timedelta(days=offset), datetime.min.time(), UTC)



def judge_pools(con: duckdb.DuckDBPyConnection, home: Path, warmup: WarmupSettings, now: datetime) -> dict[str, dict]:
    """Judge today for every pool that warms up (the aggregate stage's call, after it loaded the day's
    bounces and complaints): what each pool's step is today and why."""
    return {pool: {"day": day.day, "step": day.step, "verdict": day.verdict, "why": day.why}
            for pool, ramp in warmup.pools.items() for day in [judge(con, home, warmup, ramp, now)]}
