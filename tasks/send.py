"""Send one chunk: compose each recipient's message, deliver over the pool, log every outcome."""

from __future__ import annotations

import asyncio
import json
import os
from contextlib import aclosing
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import polars as pl
from prefect import task
from prefect.cache_policies import NO_CACHE

from mailflow.errors import MailflowError, NeedsAttention
from mailflow.settings import Settings
from tasks.campaign import CampaignSpec
from tasks.compose import Composer
from tasks.ledger import IN_FLIGHT, LedgerRecord, LedgerWriter, ledger_path, logged_subscribers
from tasks.message import Envelope
from tasks.plan import campaign_dir, read_manifest
from tasks.render import CampaignTemplates
from tasks.smtp import Outcome, deliver_all
from tasks.smtpclient import PipeliningConnection
from tasks.tokens import TokenSigner


def composer_for(settings: Settings, spec: CampaignSpec) -> Composer:
    """Templates compiled, tokens keyed and the DKIM key loaded: once per chunk task."""
    if not settings.tracking.secret:
        raise MailflowError("set MAILFLOW_TRACKING__SECRET: List-Unsubscribe links and bounce addresses are signed with it")
    templates = CampaignTemplates(spec.template, spec.subject, {"name": spec.name, "id": spec.campaign_id},
                                  track_opens=spec.tracking.get("opens", True),
                                  track_clicks=spec.tracking.get("clicks", True))
    return Composer(spec, templates, TokenSigner(settings.tracking.secret), settings.tracking.base_url,
                    settings.smtp.bounce_domain, dkim_signer(settings))


def dkim_signer(settings: Settings):
    """The DKIM signer of the settings, or None when no DKIM domain is configured."""
    dkim = settings.dkim
    if not dkim.domain:
        return None
    from tasks.dkim import DkimSigner, load_key

    if dkim.private_key:
        pem = dkim.private_key.encode()
    elif dkim.private_key_file:
        try:
            pem = Path(dkim.private_key_file).read_bytes()
        except OSError as exc:
            raise MailflowError(f"dkim.private_key_file {dkim.private_key_file}: {exc.strerror}") from None
    else:
        raise MailflowError("dkim.domain is set but no key: set MAILFLOW_DKIM__PRIVATE_KEY or dkim.private_key_file")
    try:
        return DkimSigner(load_key(dkim.domain, dkim.selector, pem))
    except ValueError as exc:
        raise MailflowError(f"dkim key: {exc}") from None


def write_link_table(settings: Settings, spec: CampaignSpec, composer: Composer) -> Path:
    """The campaign's tracked URLs by index, for the tracking service's redirects."""
    path = campaign_dir(settings.home, spec.campaign_id) / "links.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"links.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"campaign_id": spec.campaign_id, "links": composer.templates.links.urls}, indent=1))
    os.replace(tmp, path)
    return path


def preflight(settings: Settings, spec: CampaignSpec, chunk: Path, sample: int) -> list[Envelope]:
    """Compose the first `sample` recipients; any failure stops the campaign before it sends.

    Runs once per send, before any chunk: the place to write the campaign's link table too.
    """
    composer = composer_for(settings, spec)
    write_link_table(settings, spec, composer)
    envelopes = []
    for row in pl.read_parquet(chunk, n_rows=sample).to_dicts():
        result = composer.compose(row)
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
    composer = composer_for(settings, spec)
    with LedgerWriter(path) as ledger:
        logged = logged_subscribers(path)
        in_doubt = {sid for sid, status in logged.items() if status == IN_FLIGHT}
        skip = set(logged) - (in_doubt if settings.send.resend_in_doubt else set())
        counts["skipped"] = len(skip) - len(in_doubt & skip)
        counts["in_doubt"] = len(in_doubt & skip)
        pool = settings.pool(spec.transport)

        def record(row: dict, outcome: Outcome) -> LedgerRecord:
            return LedgerRecord(
                campaign_id=spec.campaign_id, subscriber_id=row["subscriber_id"], variant=row["variant"],
                chunk_id=chunk_id, status=outcome.status, smtp_code=outcome.smtp_code,
                enhanced_status=outcome.enhanced_status, detail=outcome.detail, attempt=attempt,
            )

        def envelopes() -> Iterator[tuple[dict, Envelope | Outcome]]:
            for row in frame.iter_rows(named=True):
                if row["subscriber_id"] not in skip:
                    yield row, composer.compose(row)

        # One relay per chunk for now; chunks rotate over the pool's relays.
        relay = pool.relays[chunk_id % len(pool.relays)]
        trouble = 0  # consecutive outcomes that blame the relay, not the recipient
        stream = deliver_all(
            envelopes(), relay, pool.connections, settings.smtp.helo, settings.smtp.timeout,
            connection_factory=PipeliningConnection,  # aiosmtplib's SmtpConnection is the tests' reference
            on_start=lambda row: ledger.mark_in_flight(record(row, Outcome(IN_FLIGHT))),
        )
        async with aclosing(stream):  # stopping early ends every connection before the ledger closes
            async for row, outcome in stream:
                ledger.append(record(row, outcome))
                counts[outcome.status] += 1
                trouble = trouble + 1 if relay_trouble(outcome) else 0
                if trouble >= settings.send.error_budget:
                    # Stop here: the rest stay unlogged and are sent by the next run once the relay works.
                    raise NeedsAttention(
                        f"campaign {spec.campaign_id!r} paused: {trouble} recipients in a row failed at relay "
                        f"{relay} ({outcome.detail}); fix the relay and run `mailflow send` again to resume"
                    )
    return dict(counts)


def relay_trouble(outcome: Outcome) -> bool:
    """An outcome that says the relay is broken (refused session, no connection), not the recipient."""
    return outcome.status == "deferred" and (
        outcome.smtp_code is None or outcome.detail.startswith("relay refused the session"))


def load_plan(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[Path]]:
    """The campaign as planned, from its manifest: the send stage never opens the warehouse."""
    manifest = read_manifest(settings.home, campaign_id)
    chunk_dir = campaign_dir(settings.home, campaign_id) / "chunks"
    return CampaignSpec.from_dict(manifest["spec"]), [chunk_dir / name for name in manifest["chunks"]]


@task(name="load_plan", cache_policy=NO_CACHE)
def load_plan_task(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[Path]]:
    return load_plan(settings, campaign_id)


@task(name="preflight_render", cache_policy=NO_CACHE)
def preflight_task(settings: Settings, spec: CampaignSpec, chunk: Path, sample: int = 20) -> int:
    return len(preflight(settings, spec, chunk, sample))


@task(name="send_chunk", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def send_chunk_task(settings: Settings, spec: CampaignSpec, chunk: Path) -> dict[str, int]:
    # A retry resumes from the ledger, so it never sends a logged recipient twice.
    return asyncio.run(send_chunk(settings, spec, chunk))
