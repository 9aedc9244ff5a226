"""Send one chunk: compose each recipient's message, deliver over the pool, log every outcome."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from mailflow import TEMPLATES_DIR
from mailflow.errors import NeedsAttention
from mailflow.providers import provider_of
from mailflow.settings import SendSettings, Settings
from mailflow.tasks.bounces.classify import classify_reply
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import signer_from_settings
from mailflow.tasks.deliver.shaping import ProviderLane
from mailflow.tasks.deliver.smtp import Cause, Outcome
from mailflow.tasks.deliver.transport import MX, dispatcher_for
from mailflow.tasks.files.atomic import atomic_write
from mailflow.tasks.files.control import stop_requested
from mailflow.tasks.files.ledger import IN_FLIGHT, ChunkBusy, LedgerRecord, LedgerWriter, RecipientState, ledger_path, ledger_state
from mailflow.tasks.files.manifest import campaign_dir, read_manifest
from mailflow.tasks.files.suppress import SuppressionCheck, SuppressionLog
from mailflow.tasks.files.warmup import next_day
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.schedule import PlannedChunk, planned_chunks
from mailflow.tasks.send.warmup import WARMUP_REASON, WarmupCaps


def composer_for(settings: Settings, spec: CampaignSpec, variant: str = "A") -> Composer:
    """Templates compiled, tokens keyed and the DKIM key loaded: once per chunk task. `spec` is the
    campaign's; the message is composed with the variant's overrides (CampaignSpec.for_variant)."""
    signer = signer_from_settings(settings.tracking)  # first: without a secret nothing else matters
    templates = variant_templates(settings, spec, variant)
    return Composer(spec.for_variant(variant), templates, signer,
                    settings.tracking.base_url, settings.smtp.bounce_domain, dkim_signer(settings), variant=variant)


def variant_templates(settings: Settings, spec: CampaignSpec, variant: str | None = None) -> CampaignTemplates:
    """The variant's templates (the last variant's when None). The variants before it are compiled
    first so a link's index means one URL across the campaign: links.json is one table."""
    names = spec.variant_names
    if variant is not None:  # a name the campaign lacks: for_variant says so
        names = names[:names.index(variant) + 1] if variant in names else (variant,)
    links: tuple[str, ...] = ()
    for name in names:
        own = spec.for_variant(name)
        templates = CampaignTemplates(own.template, own.subject, {"name": spec.name, "id": spec.campaign_id},
                                      (settings.templates_dir, TEMPLATES_DIR),
                                      track_opens=spec.tracking.get("opens", True),
                                      track_clicks=spec.tracking.get("clicks", True),
                                      preheader=own.preheader, known_links=links, variant=name)
        links = tuple(templates.links.urls)
    return templates


def dkim_signer(settings: Settings):
    """The DKIM signer of the settings (RSA, Ed25519 or both), or None when no DKIM domain is configured."""
    from mailflow.tasks.compose.dkim import signer_for

    return signer_for(settings.dkim)


def write_link_table(settings: Settings, spec: CampaignSpec) -> Path:
    """The campaign's tracked URLs by index (every variant's), for the tracking service's redirects."""
    path = campaign_dir(settings.home, spec.campaign_id) / "links.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    links = {"campaign_id": spec.campaign_id, "links": variant_templates(settings, spec).links.urls}
    return atomic_write(path, lambda p: p.write_text(json.dumps(links, indent=1)))


def preflight(settings: Settings, spec: CampaignSpec, chunk: Path, sample: int, variant: str = "A") -> list[Envelope]:
    """Compose the first `sample` recipients; a template that fails for any of them stops the
    campaign before it sends. A recipient whose address cannot be sent to (its template rendered)
    fails alone when its chunk is sent, with the reason in the ledger.

    Runs once per send, before any chunk: the place to write the campaign's link table too.
    """
    composer = composer_for(settings, spec, variant)
    if spec.transport != MX:
        settings.pool(spec.transport)  # an unknown pool stops the campaign here, with the known ones named
    write_link_table(settings, spec)
    envelopes = []
    for row in pl.read_parquet(chunk, n_rows=sample).to_dicts():
        result = composer.compose(row)
        if isinstance(result, Outcome) and result.cause is Cause.ADDRESS:
            continue
        if isinstance(result, Outcome):
            raise NeedsAttention(
                f"campaign {spec.campaign_id!r} not sent: subscriber {row['subscriber_id']} failed the "
                f"dry-run render ({result.detail})"
            )
        envelopes.append(result)
    return envelopes


async def send_chunk(settings: Settings, spec: CampaignSpec, chunk: Path, *, variant: str = "A", retry: bool = False,
                     now: datetime | None = None, acquire: Callable[[int], Awaitable[None]] | None = None,
                     lanes: dict[str, ProviderLane] | None = None,
                     interrupted: Callable[[], bool] = lambda: False, busy_ok: bool = False) -> dict[str, int]:
    """Deliver the chunk's recipients; return outcome counts.

    `spec` is the campaign's; the chunk's recipients get `variant` (CampaignSpec.for_variant).
    A first send takes every recipient not yet in the ledger, and those deferred before
    any server saw their message (`unsent`: a relay that was down), at once. A retry (`retry=True`) takes
    those whose last outcome is deferred and due, and gives up on those deferred longer
    than `send.give_up_after` (bounced, soft, expired). `acquire` takes slots of the global
    rate; `lanes` carries provider suspensions from chunk to chunk within a process.
    Before each recipient it checks for a stop request (the campaign's stop file, or
    `interrupted()`): once there is one, it takes no further recipient, lets those on the
    wire finish and returns; the rest stay unlogged for the next run. A chunk whose ledger another
    process holds returns {"busy": 1} for a retry or with `busy_ok` (a duplicate run), else raises ChunkBusy.
    """
    def stopped() -> bool:
        return interrupted() or stop_requested(settings.home, spec.campaign_id)

    if stopped():  # a chunk that would start after the stop request leaves its ledger alone
        return {}
    fixed = now  # a caller's clock (tests, a replayed day) also decides warm-up's day
    clock = (lambda: fixed) if fixed else (lambda: datetime.now(UTC))
    now = now or datetime.now(UTC)
    frame = pl.read_parquet(chunk)
    chunk_id = int(frame["chunk_id"][0]) if frame.height else -1
    path = ledger_path(settings.home, spec.campaign_id, chunk_id)
    composer = composer_for(settings, spec, variant)
    suppressions = SuppressionCheck.shared(settings.home, settings.send.suppression_refresh)
    suppression_log = SuppressionLog(settings.home, f"send-{spec.campaign_id}")
    try:
        ledger = LedgerWriter(path)
    except ChunkBusy:
        if retry or busy_ok:  # the chunk's own send (or another retry) holds it: its deferred wait for the next retry
            return {"busy": 1}
        raise
    with ledger:
        todo, expired, attempts, counts = select_recipients(frame, ledger_state(path), settings, retry, now)
        log = LedgerLog(ledger, spec, chunk_id, attempts, settings.send, clock)
        for row in expired:
            log(row, Outcome("bounced", None, "4.4.7", "gave up: deferred too long (send.give_up_after)",
                         cause=Cause.EXPIRED),
                provider_of(domain_of(row)))
            counts["bounced"] += 1

        warmup = WarmupCaps.for_send(settings, spec.transport, clock)

        def precheck(row: dict) -> Outcome | None:
            cause = suppressions.cause(row["email"])
            if cause:
                return Outcome("suppressed", None, None, f"suppressed since planning: {cause}")
            return warmup.take(row, provider_of(domain_of(row))) if warmup else None

        dispatcher = dispatcher_for(settings, spec.transport, acquire, lanes)
        trouble = 0  # consecutive outcomes that blame the relay, not the recipient
        paused: str | None = None
        stream = dispatcher.run(todo, composer.compose, precheck,
                                on_start=lambda row: log(row, Outcome(IN_FLIGHT), ""), stopped=stopped)
        async with aclosing(stream):  # stopping early ends every connection before the ledger closes
            async for result in stream:
                record = log(result.row, result.outcome, result.provider, result.not_before)
                counts[record.status] += 1
                if warmup:
                    warmup.settle(result.row, result.outcome)
                if record.status == "bounced" and record.kind == "hard":
                    suppression_log.append(result.row["email"], f"bounce:{record.reason}", spec.campaign_id)
                if record.status in ("suppressed", "failed"):
                    continue  # never reached the relay: says nothing of it either way
                trouble = trouble + 1 if relay_trouble(result.outcome) else 0
                if trouble >= settings.send.error_budget and paused is None:
                    # Take no more recipients; those already on the wire still get their outcome logged.
                    dispatcher.stop()
                    # Not a pause (no person asked for one): the campaign stays `sending`, so a scheduled
                    # `send --due` continues it on its own once the relay answers again.
                    paused = (f"campaign {spec.campaign_id!r} stopped sending (still `sending`, not paused): {trouble} "
                              f"recipients in a row failed at relay {result.destination} ({result.outcome.detail}); "
                              f"fix the relay and run `mailflow {'retry' if retry else 'send'}` again to continue")
    if paused:  # the rest stay unlogged (or deferred) and are sent by the next run
        raise NeedsAttention(paused)
    return dict(counts)


def select_recipients(frame: pl.DataFrame, state: dict[int, RecipientState], settings: Settings, retry: bool,
                      now: datetime) -> tuple[list[dict], list[dict], dict[int, int], Counter]:
    """(rows to send, rows to give up on, attempt number per row, counts of rows left alone)."""
    counts: Counter[str] = Counter(dict.fromkeys(["not_due"] if retry else ["skipped", "in_doubt"], 0))
    todo, expired, attempts = [], [], {}
    for row in frame.iter_rows(named=True):
        sid = row["subscriber_id"]
        last = state.get(sid)
        if not retry:
            if last is None or (last.status == IN_FLIGHT and settings.send.resend_in_doubt) or \
                    (last.status == "deferred" and last.unsent):  # never reached a server: no risk of a copy
                todo.append(row)
                attempts[sid] = last.attempt + 1 if last else 1
            else:
                counts["in_doubt" if last.status == IN_FLIGHT else "skipped"] += 1
        elif last is not None and last.status == "deferred":
            attempts[sid] = last.attempt + 1
            first = datetime.fromisoformat(last.first_at) if last.first_at else now
            if (now - first).total_seconds() >= settings.send.give_up_after and last.reason != WARMUP_REASON:
                expired.append(row)
            elif last.retry_at is None or datetime.fromisoformat(last.retry_at) <= now:
                todo.append(row)
            else:
                counts["not_due"] += 1
    return todo, expired, attempts, counts


class LedgerLog:
    """Turns (recipient, outcome) into a classified ledger record and appends it."""

    def __init__(self, ledger: LedgerWriter, spec: CampaignSpec, chunk_id: int, attempts: dict[int, int],
                 send: SendSettings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.ledger, self.spec, self.chunk_id, self.attempts, self.send = ledger, spec, chunk_id, attempts, send
        self.clock = clock

    def __call__(self, row: dict, outcome: Outcome, provider: str, not_before: float | None = None) -> LedgerRecord:
        sid = row["subscriber_id"]
        attempt = self.attempts.get(sid, 1)
        kind = reason = retry_at = None
        if outcome.status in ("bounced", "deferred"):
            kind, reason = classify(outcome)
        if outcome.status == "deferred":
            delay = min(self.send.retry_first * 2 ** (attempt - 1), self.send.retry_max_interval)
            due = datetime.now(UTC) + timedelta(seconds=delay)
            if not_before is not None:
                due = max(due, datetime.fromtimestamp(not_before, UTC))
            if outcome.cause is Cause.WARMUP:  # today's cap is used up: the next day, whatever the back-off says
                due = next_day(self.clock())
            retry_at = due.isoformat()
        record = LedgerRecord(
            campaign_id=self.spec.campaign_id, subscriber_id=sid, variant=row["variant"], chunk_id=self.chunk_id,
            status=outcome.status, smtp_code=outcome.smtp_code, enhanced_status=outcome.enhanced_status,
            detail=outcome.detail, attempt=attempt, kind=kind, reason=reason,
            provider=provider or provider_of(domain_of(row)), retry_at=retry_at,
            unsent=outcome.status == "deferred" and outcome.unsent)
        self.ledger.append(record)
        return record


def classify(outcome: Outcome) -> tuple[str, str]:
    """(kind, reason) of a bounced or deferred outcome, by the bounce taxonomy."""
    if outcome.smtp_code is None:
        if outcome.cause is Cause.EXPIRED:
            return "soft", "expired"
        if outcome.cause is Cause.SUSPENDED:
            return "soft", "rate_limited"  # held back while its provider is suspended for throttling us
        if outcome.cause is Cause.WARMUP:
            return "soft", WARMUP_REASON
        return "soft", "network"  # no reply at all: the connection failed
    # A refused relay's detail leads with our own words ("relay refused the session: "), not the server's.
    text = outcome.detail.partition(": ")[2] if outcome.cause is Cause.RELAY_REFUSED else outcome.detail
    verdict = classify_reply(outcome.smtp_code, outcome.enhanced_status, text)
    # A deferral says nothing permanent of the address (e.g. the relay refused our login with 535).
    return ("soft" if outcome.status == "deferred" else verdict.kind), verdict.reason


def domain_of(row: dict) -> str:
    return row["email"].rpartition("@")[2]


def relay_trouble(outcome: Outcome) -> bool:
    """An outcome that says the relay is broken (no connection, refused session or sender, lost
    mid-transaction), not the recipient. A recipient held back by a suspended provider or a warm-up cap is neither."""
    if outcome.status != "deferred" or outcome.cause in (Cause.SUSPENDED, Cause.WARMUP):
        return False
    return outcome.unsent or outcome.smtp_code is None


def load_plan(settings: Settings, campaign_id: str) -> tuple[CampaignSpec, list[PlannedChunk]]:
    """The campaign as planned, from its manifest: the send stage never opens the warehouse."""
    manifest = read_manifest(settings.home, campaign_id)
    return CampaignSpec.from_dict(manifest["spec"]), planned_chunks(settings.home, campaign_id, manifest)
