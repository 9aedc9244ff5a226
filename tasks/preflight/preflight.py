"""The preflight of a campaign: every check, in the order the table shows them, and what a FAIL does to a send."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from mailflow.settings import Settings
from mailflow.tasks.core.dns import make_resolver
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.preflight.checks import FAIL, Check, apply_settings, failures_line, skipped, worst
from mailflow.tasks.preflight.content import html_of, images_check, links_check, size_check, unsubscribe_check
from mailflow.tasks.preflight.dnschecks import (
    bounce_mx_check,
    dkim_check,
    dmarc_checks,
    from_domains,
    spf_check,
    tracking_host_check,
)
from mailflow.tasks.preflight.lookup import Lookup
from mailflow.tasks.preflight.sample import Sample, campaign_samples
from mailflow.tasks.preflight.spamassassin import spam_check
from mailflow.tasks.send.schedule import abort_send

DNS_CHECKS = ("spf", "dkim", "dmarc", "alignment", "bounce_mx", "tracking_host")


def run_preflight(settings: Settings, campaign: str) -> tuple[CampaignSpec, list[Check]]:
    """Every check of the campaign (a planned id or a campaign file), after the settings' skip and warn_only."""
    spec, samples = campaign_samples(settings, campaign)
    checks = asyncio.run(dns_checks(settings, spec)) + content_checks(settings, samples)
    every = apply_settings(checks, settings.preflight) + skipped(settings.preflight, DNS_CHECKS + CONTENT_CHECKS)
    return spec, sorted(every, key=lambda c: (DNS_CHECKS + CONTENT_CHECKS).index(c.check))  # sorted() is stable


async def dns_checks(settings: Settings, spec: CampaignSpec) -> list[Check]:
    dns = settings.dns
    resolver = make_resolver(list(dns.nameservers) or None, dns.port, dns.timeout)
    lookup, skip = Lookup(resolver), settings.preflight.skip
    checks = [await spf_check(settings, spec, lookup)] if "spf" not in skip else []
    checks += [await dkim_check(settings, lookup)] if "dkim" not in skip else []
    for domain in from_domains(spec):
        checks += [c for c in await dmarc_checks(settings, domain, lookup) if c.check not in skip]
    checks += [await bounce_mx_check(settings, resolver)] if "bounce_mx" not in skip else []
    checks += [await tracking_host_check(settings, lookup)] if "tracking_host" not in skip else []
    return checks


CONTENT_CHECKS = ("unsubscribe", "links", "size", "images", "spam")


def content_checks(settings: Settings, samples: list[Sample]) -> list[Check]:
    """The sample of each variant; SpamAssassin scores them side by side (it spends seconds compiling its rules)."""
    prefs, skip = settings.preflight, settings.preflight.skip
    records = dkim_records(settings)
    with ThreadPoolExecutor(max_workers=2) as pool:
        spam = [pool.submit(spam_check, s.data, prefs) if "spam" not in skip else None for s in samples]
        per_variant = []
        for sample, scored in zip(samples, spam):
            per_variant.append([scored.result() if name == "spam" else message_check(name, sample, settings, records)
                                for name in CONTENT_CHECKS if name not in skip])
    out = []
    for found in zip(*per_variant):  # one check across the variants: one row when they agree, else a row each
        if len(set(found)) == 1:
            out.append(found[0])
        else:
            out += [replace(c, detail=f"variant {s.variant}: {c.detail}") for s, c in zip(samples, found)]
    return out


def message_check(name: str, sample: Sample, settings: Settings, records: dict[str, str] | None) -> Check:
    if name == "unsubscribe":
        return unsubscribe_check(sample.data, records)
    if name == "size":
        return size_check(sample.data, settings.preflight)
    html = html_of(sample.data)
    if name == "links":
        return links_check(html, sample.links)
    return images_check(html, settings.preflight, open_pixel=settings.tracking.base_url.rstrip("/") + "/o/")


def dkim_records(settings: Settings) -> dict[str, str] | None:
    """The records the configured keys need, to verify the sample's signatures against (None when nothing signs)."""
    from mailflow.tasks.compose.dkim import dns_record
    from mailflow.tasks.send.chunk import dkim_signer

    try:
        signer = dkim_signer(settings)
    except Exception:  # noqa: BLE001 - a key that cannot load is the dkim check's FAIL; composing would have raised
        return None
    return {f"{k.selector}._domainkey.{k.domain}": dns_record(k) for k in signer.keys} if signer else None


def stop_on_failure(settings: Settings, spec: CampaignSpec, checks: list[Check], by: str) -> None:
    """A FAIL aborts the campaign (a later `send` after the fix resumes it) and raises NeedsAttention."""
    from mailflow.errors import NeedsAttention

    if worst(checks) == FAIL:
        reason = f"preflight failed: {failures_line(checks)}"
        abort_send(settings.home, spec.campaign_id, by, reason)
        raise NeedsAttention(f"campaign {spec.campaign_id!r} aborted, {reason} (`mailflow preflight "
                             f"{spec.campaign_id}` shows the fixes; --skip-preflight sends anyway)")
