"""When each recipient's chunk may go: now, a fixed instant, or a local time of day in the recipient's zone."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailflow.tasks.plan.campaign import CampaignSpec, SendAt, zone_exists

NOW = ""  # the zone key of recipients whose time does not depend on their zone


def send_at_of(spec: CampaignSpec, variant: str) -> SendAt | None:
    """The variant's own send_at, else the campaign's (the remainder and holdout: the campaign's)."""
    own = next((v.send_at for v in spec.variants if v.name == variant), None)
    return own or spec.send_at


def next_local(send_at: SendAt, zone: str | None, now: datetime) -> datetime:
    """The first moment after `now` when it is `local_time` in `zone` (a valid IANA zone, else the
    default): DST-aware, a time skipped by a spring-forward lands just after the gap."""
    tz = ZoneInfo(zone if zone and zone_exists(zone) else send_at.default_zone)
    hours, minutes = (int(x) for x in send_at.local_time.split(":"))
    local_now = now.astimezone(tz)
    for days in (0, 1, 2):
        day = local_now.date() + timedelta(days=days)
        candidate = datetime.combine(day, time(hours, minutes), tzinfo=tz)
        if candidate.astimezone(UTC) > now:
            return candidate.astimezone(UTC)
    raise AssertionError("a local time recurs within two days")  # pragma: no cover


def not_before(send_at: SendAt | None, zone: str | None, now: datetime) -> datetime | None:
    if send_at is None:
        return None
    if send_at.at is not None:
        return datetime.fromisoformat(send_at.at).astimezone(UTC)
    return next_local(send_at, zone, now)


def uses_zones(spec: CampaignSpec, variants: list[str]) -> set[str]:
    """The variants whose recipients' times depend on their zone."""
    return {v for v in variants if (s := send_at_of(spec, v)) is not None and s.local_time is not None}


def times_table(spec: CampaignSpec, variants: list[str], zones_by_variant: dict[str, set[str | None]],
                now: datetime) -> list[tuple[str, str, datetime | None]]:
    """(variant, zone key, not_before) for every variant and, for local-time ones, every zone its
    recipients have: computed once per distinct zone, never per recipient."""
    rows = []
    for variant in variants:
        send_at = send_at_of(spec, variant)
        if variant in zones_by_variant:
            rows += [(variant, zone or NOW, not_before(send_at, zone, now)) for zone in zones_by_variant[variant]]
        else:
            rows.append((variant, NOW, not_before(send_at, None, now)))
    return rows
