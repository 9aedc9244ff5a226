"""The tracking service in tests: a campaign really sent through the receiver, its messages' URLs, the logs read back."""

from __future__ import annotations

import asyncio
import html
import json
import os
import re
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import httpx
import pytest

from mailflow.settings import Settings, load_settings
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.plan.campaign import CampaignSpec
from mailflow.tasks.send.chunk import preflight, send_chunk
from mailflow.tasks.track.server import running_service
from tests.support.campaign import SECRET_ENV, write_plan
from tests.support.commands import wait_for
from tests.support.events import read_line

# Two static links (the first already carries a UTM parameter of its own), a templated link signed
# per recipient, and the unsubscribe link
TEMPLATE = """<html><body><p>Hi {{ subscriber.first_name }}</p>
<a href="https://shop.example/sale?ref=mail&amp;utm_source=partner">Sale</a>
<a href="https://shop.example/item#top">Item</a>
<a href="https://shop.example/u/{{ subscriber.subscriber_id }}?x=1">Yours</a>
<a href="{{ unsubscribe_url }}">Unsubscribe</a>
</body></html>"""
UTM = {"source": "newsletter", "medium": "email", "campaign": "{campaign}", "content": "{variant}"}
SPEC = CampaignSpec(name="News", campaign_id="news", from_addr="News <news@example.com>", subject="Hi", template="t",
                    tracking={"opens": True, "clicks": True, "utm": UTM})
USER_AGENT = "mailflow-test/1"


@dataclass
class Mail:
    """The URLs one recipient's message carries."""

    email: str
    subscriber_id: int
    open_url: str = ""
    click_urls: list[str] = field(default_factory=list)
    redirect_urls: list[str] = field(default_factory=list)
    unsubscribe_url: str = ""  # List-Unsubscribe's https URL (the one-click POST target)


def track_settings(home: Path, relay_port: int, tracking: dict | None = None, environ: dict | None = None,
                   **send) -> Settings:
    """Settings sending one message at a time through `relay_port`, with the test template's folder;
    secrets from `environ` (default: the tests' tracking secret)."""
    templates = home.parent / "templates"
    templates.mkdir(parents=True, exist_ok=True)
    (templates / "t.html.j2").write_text(TEMPLATE)
    return load_settings(overrides={
        "home": str(home), "templates_dir": str(templates),
        "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{relay_port}"], "connections": 1}}},
        "send": {"chunk_size": 100, **send}, "tracking": {"base_url": "http://unused.example", **(tracking or {})}},
        environ=SECRET_ENV if environ is None else environ)


@contextmanager
def service(settings: Settings):
    """The service on a thread; yields the settings whose base_url points at it (for sending) and its URL."""
    with running_service(settings) as url:
        yield replace(settings, tracking=replace(settings.tracking, base_url=url)), url


def send_campaign(settings: Settings, receiver: Receiver, emails: list[str], spec: CampaignSpec = SPEC,
                  variant: str = "A") -> dict[str, Mail]:
    """Plan (files only), send `variant` through the receiver, and read each recipient's URLs out of what arrived."""
    before = len(receiver.received)
    (chunk,) = write_plan(settings.home, spec, [(emails, variant, None, False)])
    preflight(settings, spec, chunk, 1, variant)  # writes links.json, as the send does
    asyncio.run(send_chunk(settings, spec, chunk, variant=variant))
    return mails_of(receiver.received[before:], emails)


def mails_of(received, emails: list[str]) -> dict[str, Mail]:
    mails = {}
    for message in received:
        parsed = message_from_bytes(message.data, policy=default)
        email = message.recipients[0]
        mail = Mail(email, emails.index(email) + 1)
        body = parsed.get_body(("html",)).get_content()
        for url in (html.unescape(u) for u in re.findall(r'(?:href|src)="([^"]+)"', body)):
            if "/o/" in url:
                mail.open_url = url
            elif "/c/" in url:
                mail.click_urls.append(url)
            elif "/r?" in url:
                mail.redirect_urls.append(url)
        mail.unsubscribe_url = re.search(r"<(https?://[^>]+)>", str(parsed["List-Unsubscribe"])).group(1)
        mails[email] = mail
    return mails


def event_lines(home: Path) -> list[dict]:
    return [read_line(line) for path in sorted((home / "events").glob("*.ndjson"))
            for line in path.read_text().splitlines()]


def suppression_lines(home: Path) -> list[dict]:
    return [json.loads(line) for path in sorted((home / "suppressions" / "log").glob("*.ndjson"))
            for line in path.read_text().splitlines()]


def serve_process(home: Path, port: int, workers: int = 2) -> subprocess.Popen:
    """`mailflow track serve` as a user starts it, leader of its own process group, once it answers."""
    proc = subprocess.Popen([sys.executable, "-m", "mailflow.cli", "--home", str(home), "track", "serve", "--port", str(port),
                             "--workers", str(workers)], env={**os.environ, **SECRET_ENV},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def answering():
        """GET /healthz answers 200"""
        if proc.poll() is not None:
            pytest.fail(f"the service exited: {proc.communicate()[0].decode()}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.TransportError:
            return False
    wait_for(answering, "the service to answer")
    return proc


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> str:
    """Signal the service's whole process group (master and workers); its output."""
    os.killpg(proc.pid, sig)
    return proc.communicate(timeout=60)[0].decode()
