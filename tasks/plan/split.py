"""The A/B split: a stable hash of (campaign, subscriber) in [0,1), cut into holdout, variant and remainder bands."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from mailflow.tasks.plan.campaign import CampaignSpec

HOLDOUT, REMAINDER, SINGLE = "holdout", "remainder", "A"
_SCALE = 2 ** 53  # u keeps the hash's top 53 bits: exactly a double, in [0, 1) in SQL and Python alike
_MASK = 2 ** 64 - 1
MAX_BANDS = 10  # holdout, 8 variants (the campaign file's most), remainder


@dataclass(frozen=True)
class Band:
    """Recipients whose u is at least `lo` (and below the next band's lo) get `variant`."""

    variant: str
    lo: float


def campaign_key(campaign_id: str) -> int:
    """DuckDB's md5_number_lower(campaign_id): MD5's last 8 bytes, read little-endian."""
    return int.from_bytes(hashlib.md5(campaign_id.encode()).digest()[8:], "little")


def fmix64(h: int) -> int:
    """MurmurHash3's 64-bit finaliser: every input bit flips each output bit with probability 1/2."""
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & _MASK
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & _MASK
    return h ^ (h >> 33)


def unit_hash(campaign_id: str, subscriber_id: int) -> float:
    """The reference of sql/queries/plan.sql's plan_unit (stage_plan_split_functions): fmix64 of the subscriber id XOR
    the campaign's key, top 53 bits, in [0, 1)."""
    return (fmix64(campaign_key(campaign_id) ^ subscriber_id) >> 11) / _SCALE


def bands(spec: CampaignSpec) -> list[Band]:
    """[0, holdout) holdout; then test_fraction split across the variants by cumulative weight; the rest
    remainder. Without `ab` the variants share everything; without variants everyone is A. Empty bands
    are left out, so a u falls in exactly one."""
    if not spec.variants:
        return [Band(SINGLE, 0.0)]
    holdout = spec.ab.holdout_fraction if spec.ab else 0.0
    test = spec.ab.test_fraction if spec.ab else 1.0
    total = sum(v.weight for v in spec.variants)
    found, cumulative = [Band(HOLDOUT, 0.0)], 0.0
    for variant in spec.variants:
        found.append(Band(variant.name, holdout + test * cumulative / total))
        cumulative += variant.weight
    end = holdout + test
    found.append(Band(REMAINDER, 1.0 if end > 1 - 1e-9 else end))  # fractions summing to 1 leave no remainder
    found.append(Band("", 1.0))  # the end, dropped below
    return [b for b, nxt in zip(found, found[1:]) if nxt.lo > b.lo and b.lo < 1.0]


def band_lists(table: list[Band]) -> tuple[list[str], list[float]]:
    """The bands as sql/queries/plan.sql's plan_band takes them: names and their starts, padded to
    MAX_BANDS with starts no u reaches."""
    if len(table) > MAX_BANDS:
        raise ValueError(f"{len(table)} bands, plan_band takes at most {MAX_BANDS}")
    pad = MAX_BANDS - len(table)
    return [b.variant for b in table] + [""] * pad, [b.lo for b in table] + [2.0] * pad


def variant_of(u: float, table: list[Band]) -> str:
    """The band of u: the reference of the plan's lookup (the last band whose lo <= u)."""
    return [b.variant for b in table if b.lo <= u][-1]
