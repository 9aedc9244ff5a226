"""The preflight's sample: one message per variant, composed through the send stage's own path (render, headers, DKIM)."""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path

import polars as pl

from mailflow.errors import NeedsAttention
from mailflow.settings import Settings
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.smtp import Cause
from mailflow.tasks.plan.campaign import CampaignSpec, load_campaign
from mailflow.tasks.send.chunk import composer_for, load_plan, variant_templates

ROWS_TRIED = 20  # recipients tried per variant for one that composes (an unsendable address fails alone)


@dataclass(frozen=True)
class Sample:
    variant: str
    data: bytes  # the message as it would go on the wire
    links: tuple[str, ...]  # the campaign's tracked URLs (links.json)


def is_campaign_file(campaign: str) -> bool:
    return campaign.endswith((".yaml", ".yml")) or Path(campaign).is_file()


def campaign_samples(settings: Settings, campaign: str) -> tuple[CampaignSpec, list[Sample]]:
    """A planned campaign's id: its first recipients of each variant. A campaign file: a made-up recipient
    (subscriber 0, no attributes, so templates show their defaults)."""
    if is_campaign_file(campaign):
        spec = load_campaign(Path(campaign))
        rows = {name: [synthetic_row(spec)] for name in spec.variant_names}
    else:
        spec, chunks = load_plan(settings, campaign)
        rows = {}
        for chunk in chunks:
            if not chunk.held and chunk.variant not in rows:
                rows[chunk.variant] = pl.read_parquet(chunk.path, n_rows=ROWS_TRIED).to_dicts() or [synthetic_row(spec)]
        rows = rows or {spec.variant_names[0]: [synthetic_row(spec)]}  # a held remainder only: the first variant
    links = tuple(variant_templates(settings, spec).links.urls)
    return spec, [Sample(variant, compose_first(settings, spec, variant, found).data, links)
                  for variant, found in rows.items()]


def synthetic_row(spec: CampaignSpec) -> dict:
    domain = parseaddr(spec.from_addr)[1].rpartition("@")[2] or "example.com"
    return {"subscriber_id": 0, "email": f"preflight-sample@{domain}", "attributes": "{}"}


def compose_first(settings: Settings, spec: CampaignSpec, variant: str, rows: list[dict]) -> Envelope:
    composer = composer_for(settings, spec, variant)
    for row in rows:
        result = composer.compose(row)
        if isinstance(result, Envelope):
            return result
        if result.cause is not Cause.ADDRESS:
            raise NeedsAttention(f"campaign {spec.campaign_id!r} variant {variant!r}: subscriber {row['subscriber_id']} "
                                 f"failed to render ({result.detail})")
    raise NeedsAttention(f"campaign {spec.campaign_id!r} variant {variant!r}: none of its first {len(rows)} recipients "
                         "has an address that can be sent to")


