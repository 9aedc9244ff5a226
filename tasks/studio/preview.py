"""A template previewed for one subscriber and variant through the send stage's own compose path (no Starlette here)."""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from mailflow import TEMPLATES_DIR
from mailflow.errors import MailflowError
from mailflow.settings import Settings
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import signer_from_settings
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.preflight.checks import Check
from mailflow.tasks.preflight.content import parse, size_check
from mailflow.tasks.send.chunk import dkim_signer, load_plan
from mailflow.tasks.studio.names import PARTS, template_file

SCRATCH_KEPT = 256  # unsaved texts kept as files (a few KB each) for previews in this process
PREVIEW_ID = "studio-preview"  # the campaign id of a preview without a campaign: its links are signed for no campaign


class PreviewError(MailflowError):
    """The preview cannot be made: why, in one line the studio shows (never an address)."""


@dataclass(frozen=True)
class Preview:
    subject: str
    html: str | None
    text: str
    headers: list[tuple[str, str]]  # the message's own header fields, as sent (MIME part headers left out)
    size: int  # bytes on the wire
    size_check: Check
    links: tuple[str, ...]  # the tracked URLs, by index (links.json)
    variant: str
    subscriber_id: int


def base_name(name: str) -> str:
    """'digest.html.j2' -> 'digest' (a template is its two parts; either file name picks it)."""
    return next(name.removesuffix(p) for p in PARTS if name.endswith(p))


def campaign_spec(settings: Settings, campaign: str | None, name: str, subject: str | None) -> CampaignSpec:
    """The campaign's spec (from its manifest) with `name` as its template; without a campaign, a stand-in."""
    if campaign:
        try:
            spec, _ = load_plan(settings, campaign)
        except (MailflowError, FileNotFoundError, OSError) as exc:
            raise PreviewError(f"campaign {campaign!r} has no plan to preview with: {exc}") from None
    else:
        domain = settings.smtp.bounce_domain or "example.com"
        spec = CampaignSpec(name="Studio preview", campaign_id=PREVIEW_ID, from_addr=f"Preview <preview@{domain}>",
                            subject="{{ campaign.name }}", template=name)
    return replace(spec, template=name, subject=subject or spec.subject,
                   variants=tuple(replace(v, template=None, subject=None if subject else v.subject) for v in spec.variants))


def subscriber_row(settings: Settings, campaign: str | None, subscriber_id: int | None = None,
                   email: str | None = None) -> dict:
    """The subscriber's row from the campaign's chunk files (never the warehouse); the first when neither id nor
    email is given. Without a campaign: a made-up subscriber 0 with no attributes (templates show their defaults)."""
    if not campaign:
        if email or subscriber_id not in (None, 0):
            raise PreviewError("choose a campaign to preview for a real subscriber (rows come from its chunk files)")
        domain = settings.smtp.bounce_domain or "example.com"
        return {"subscriber_id": 0, "email": f"preview@{domain}", "attributes": "{}"}
    _, chunks = load_plan(settings, campaign)
    files = [str(c.path) for c in chunks if c.path.exists()]
    if not files:
        raise PreviewError(f"campaign {campaign!r} has no chunk files to find subscribers in")
    rows = pl.scan_parquet(files)
    if subscriber_id is not None:
        rows = rows.filter(pl.col("subscriber_id") == subscriber_id)
    if email:
        rows = rows.filter(pl.col("email").str.to_lowercase() == email.strip().lower())
    found = rows.head(1).collect().to_dicts()
    if not found:
        raise PreviewError(f"no such subscriber in campaign {campaign!r}'s plan")
    return found[0]


class Scratch:
    """Unsaved editor text as template files: a folder per content digest, in a temporary folder of this process,
    searched before the templates folder (so {% include %} of saved files still works). The same text is the
    same folder, so the compiled templates are reused (render.py caches by source and folder)."""

    def __init__(self, kept: int = SCRATCH_KEPT):
        self._dir = tempfile.TemporaryDirectory(prefix="mailflow-studio-")
        self.root = Path(self._dir.name)
        self._kept: OrderedDict[str, None] = OrderedDict()  # folders by last use: the oldest go past `kept`
        self._limit = kept
        self._lock = threading.Lock()  # previews render on the thread pool

    def folder(self, settings: Settings, name: str, edits: dict[str, str]) -> Path:
        sources = {}
        for part in PARTS:
            file = f"{name}{part}"
            if file in edits:
                sources[file] = edits[file].replace("\r\n", "\n")
            elif (path := template_file(settings.templates_dir, file)).is_file():
                sources[file] = path.read_text(encoding="utf-8")
        key = hashlib.sha256(repr(sorted(sources.items())).encode()).hexdigest()[:32]
        folder = self.root / key
        if not folder.is_dir():  # written aside, then renamed whole: a preview never reads half a folder
            tmp = Path(tempfile.mkdtemp(prefix=".", dir=self.root))
            for file, text in sources.items():
                (tmp / file).write_text(text, encoding="utf-8")
            try:
                tmp.rename(folder)
            except OSError:  # another request wrote the same text first
                shutil.rmtree(tmp, ignore_errors=True)
        with self._lock:
            self._kept[key] = None
            self._kept.move_to_end(key)
            while len(self._kept) > self._limit:  # every keystroke's text is a folder: keep the latest only
                shutil.rmtree(self.root / self._kept.popitem(last=False)[0], ignore_errors=True)
        return folder

    def close(self) -> None:
        self._dir.cleanup()


def render_preview(settings: Settings, spec: CampaignSpec, variant: str, row: dict,
                   first: Path | None = None) -> Preview:
    """Compose `row`'s message as the send stage would (sandboxed Jinja2, CSS inlined, links tracked, headers, DKIM
    when configured) with `spec`'s template; `first`: a folder searched before the templates folder (unsaved text)."""
    if variant not in spec.variant_names:
        raise PreviewError(f"campaign {spec.campaign_id!r} has no variant {variant!r} "
                           f"(it has {', '.join(spec.variant_names)})")
    own = spec.for_variant(variant)
    folders = ((first,) if first else ()) + (settings.templates_dir, TEMPLATES_DIR)
    try:
        signer = signer_from_settings(settings.tracking)
        templates = CampaignTemplates(own.template, own.subject, {"name": spec.name, "id": spec.campaign_id}, folders,
                                      track_opens=spec.tracking.get("opens", True),
                                      track_clicks=spec.tracking.get("clicks", True),
                                      preheader=own.preheader, variant=variant)
        composer = Composer(own, templates, signer, settings.tracking.base_url, settings.smtp.bounce_domain,
                            dkim_signer(settings), variant=variant)
    except MailflowError as exc:
        raise PreviewError(str(exc)) from None
    result = composer.compose(row)
    if not isinstance(result, Envelope):
        raise PreviewError(f"subscriber {row.get('subscriber_id')}: {result.detail}")
    data = bytes(result.data)
    message = parse(data)
    html_part, text_part = message.get_body(preferencelist=("html",)), message.get_body(preferencelist=("plain",))
    mime = {"content-type", "mime-version", "content-transfer-encoding"}
    headers = [(k, str(v)) for k, v in message.items() if k.lower() not in mime]
    return Preview(str(message["Subject"]), html_part.get_content() if html_part is not None else None,
                   text_part.get_content() if text_part is not None else "", headers, len(data),
                   size_check(data, settings.preflight), tuple(templates.links.urls), variant, int(row["subscriber_id"]))
