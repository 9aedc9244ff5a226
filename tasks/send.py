"""Send one chunk: render each recipient, deliver over the pool, log every outcome to the ledger."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.errors import NeedsAttention
from mailflow.settings import Settings
from tasks.campaign import CampaignSpec
from tasks.ledger import LedgerRecord, LedgerWriter, ledger_path, logged_subscribers
from tasks.message import Envelope, HeaderInjection, build_message, envelope_sender
from tasks.plan import campaign_dir, read_manifest
from tasks.render import CampaignTemplates, RenderError
from tasks.smtp import Outcome, deliver_all


def campaign_templates(spec: CampaignSpec) -> CampaignTemplates:
    return CampaignTemplates(spec.template, spec.subject, {"name": spec.name, "id": spec.campaign_id})


def envelope_for(spec: CampaignSpec, templates: CampaignTemplates, row: dict) -> Envelope | Outcome:
    """The recipient's envelope, or a `failed` outcome saying why it cannot be sent."""
    try:
        rendered = templates.render(row)
        to_name = " ".join(x for x in (row.get("first_name"), row.get("last_name")) if x) or None
        data = build_message(
            from_addr=spec.from_addr, to_email=row["email"], to_name=to_name, subject=rendered.subject,
            html=rendered.html, text=rendered.text, reply_to=spec.reply_to,
        )
    except (RenderError, HeaderInjection) as exc:
        return Outcome("failed", None, None, str(exc))
    except (ValueError, UnicodeError) as exc:  # e.g. an address the MIME layer cannot encode
        return Outcome("failed", None, None, f"cannot build the message: {type(exc).__name__}")
    return Envelope(envelope_sender(spec.from_addr), row["email"], data)


def preflight(spec: CampaignSpec, chunk: Path, sample: int) -> list[Envelope]:
    """Render the first `sample` recipients; any failure stops the campaign before it sends."""
    templates = campaign_templates(spec)
    rows = pl.read_parquet(chunk, n_rows=sample).to_dicts()
    envelopes = []
    for row in rows:
        result = envelope_for(spec, templates, row)
        if isinstance(result, Outcome):
            raise NeedsAttention(
                f"campaign {spec.campaign_id!r} not sent: subscriber {row['subscriber_id']} failed the "
                f"dry-run render ({result.detail})"
            )
        envelopes.append(result)
    return envelopes


async def send_chunk(settings: Settings, spec: CampaignSpec, chunk: Path, attempt: int = 1) -> dict[str, int]:
    """Deliver every recipient of the chunk not yet in its ledger; return outcome counts."""
    frame = pl.read_parquet(chunk)
    chunk_id = int(frame["chunk_id"][0]) if frame.height else -1
    path = ledger_path(settings.home, spec.campaign_id, chunk_id)
    counts: Counter[str] = Counter()
    with LedgerWriter(path) as ledger:
        done = logged_subscribers(path)
        counts["skipped"] = len(done)
        templates = campaign_templates(spec)
        pool = settings.pool(spec.transport)

        def envelopes() -> Iterator[tuple[dict, Envelope | Outcome]]:
            for row in frame.iter_rows(named=True):
                if row["subscriber_id"] not in done:
                    yield row, envelope_for(spec, templates, row)

        # One relay per chunk for now; chunks rotate over the pool's relays.
        relay = pool.relays[chunk_id % len(pool.relays)]
        async for row, outcome in deliver_all(
            envelopes(), relay, pool.connections, settings.smtp.helo, settings.smtp.timeout
        ):
            ledger.append(LedgerRecord(
                campaign_id=spec.campaign_id, subscriber_id=row["subscriber_id"], variant=row["variant"],
                chunk_id=chunk_id, status=outcome.status, smtp_code=outcome.smtp_code,
                enhanced_status=outcome.enhanced_status, detail=outcome.detail, attempt=attempt,
            ))
            counts[outcome.status] += 1
    return dict(counts)


def load_plan(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[Path]]:
    """The campaign as planned, from its manifest: the send stage never opens the warehouse."""
    manifest = read_manifest(settings.home, campaign_id)
    chunk_dir = campaign_dir(settings.home, campaign_id) / "chunks"
    return CampaignSpec.from_dict(manifest["spec"]), [chunk_dir / name for name in manifest["chunks"]]


@task(name="load_plan", cache_policy=NO_CACHE)
def load_plan_task(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[Path]]:
    return load_plan(settings, campaign_id)


@task(name="preflight_render", cache_policy=NO_CACHE)
def preflight_task(spec: CampaignSpec, chunk: Path, sample: int = 20) -> int:
    return len(preflight(spec, chunk, sample))


@task(name="send_chunk", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def send_chunk_task(settings: Settings, spec: CampaignSpec, chunk: Path) -> dict[str, int]:
    # A retry resumes from the ledger, so it never sends a logged recipient twice.
    return asyncio.run(send_chunk(settings, spec, chunk))
