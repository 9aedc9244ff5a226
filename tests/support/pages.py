"""The tracking service's pages under test: a planned campaign with hostile data, its recipients' links, what got logged."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx

from mailflow.settings import Settings
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.render import Helpers
from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.files.manifest import ChunkEntry, campaign_dir, write_manifest
from mailflow.tasks.files.suppress import suppression_dir
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import variant_templates
from mailflow.tasks.track.events import events_dir
from tests.support.campaign import write_chunk
from tests.support.events import read_line

HOSTILE = '<script>alert("x")</script>'
# A campaign whose name and lists, and a recipient whose name and address, try to get markup onto the pages
SPEC = CampaignSpec(name=f"Spring {HOSTILE}", campaign_id="spring", from_addr="Shop <news@example.com>",
                    subject="Hi {{ subscriber.first_name }}", template="newsletter",
                    lists=("newsletter", f"offers{HOSTILE}"), tracking={"opens": True, "clicks": True})
EMAILS = ["ann@example.com", '"<img src=x onerror=alert(1)>"@example.com', "cy@example.com"]
NAMES = [HOSTILE, "Bo", "Cy"]


def plan_campaign(home: Path, spec: CampaignSpec = SPEC, emails: list[str] = EMAILS, names: list[str] = NAMES) -> Path:
    """The campaign's manifest and one chunk (subscribers 1, 2, 3 ...), as plan writes them; the chunk's path."""
    folder, name = campaign_dir(home, spec.campaign_id), "chunks/chunk-00000.parquet"
    chunk = write_chunk(folder / name, emails, names=names)
    write_manifest(folder, spec.as_dict(), [ChunkEntry(name, "A", len(emails))], len(emails))
    return chunk


def with_tracking(settings: Settings, **tracking) -> Settings:
    return replace(settings, tracking=replace(settings.tracking, **tracking))


def signer(settings: Settings) -> TokenSigner:
    return TokenSigner(settings.tracking.secret.reveal())


def helpers(settings: Settings, subscriber_id: int, spec: CampaignSpec = SPEC) -> Helpers:
    """The recipient's links as the send stage writes them into the message."""
    templates = variant_templates(settings, spec, "A")
    composer = Composer(spec, templates, signer(settings), settings.tracking.base_url, settings.smtp.bounce_domain)
    return composer.helpers(subscriber_id)[0]


def path_of(url: str) -> str:
    """A link's path (and query): the tests send it to the service on its own loopback address."""
    parsed = httpx.URL(url)
    return parsed.raw_path.decode()


def events(home: Path, kind: str | None = None) -> list[dict]:
    found = []
    for path in sorted(events_dir(home).glob("*.ndjson")):
        found += [read_line(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return [e for e in found if kind is None or e["type"] == kind]


def suppressions(home: Path) -> list[dict]:
    found = []
    for path in sorted((suppression_dir(home) / "log").glob("*.ndjson")):
        found += [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return found
