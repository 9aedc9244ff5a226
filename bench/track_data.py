"""The tracking benchmark's data: a home holding a really planned campaign, and the open and click URLs of its composed messages.

Subscribers from bench/gen_subscribers.py are inserted as ingest leaves them (ingest's Great
Expectations import alone costs seconds; ingest has its own benchmark), the campaign
(the `digest` template, opens and clicks tracked, UTM parameters on) is planned by plan() with the
template check `mailflow plan` runs, and the send stage's preflight writes links.json. Every
recipient's message is then composed as the send stage composes it, not sent, and the URLs are
read back out of its HTML part: each is what that recipient's mail client would fetch.
"""

from __future__ import annotations

import email
import html
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bench.gen_subscribers import rows as subscriber_rows

SECRET = "bench-track-secret"
CAMPAIGN = """name: Bench tracking digest
from: "News <news@example.com>"
template: digest
subject: "{{ subscriber.first_name }}, your weekly digest"
tracking: {opens: true, clicks: true, utm: {source: newsletter, medium: email, campaign: "{campaign}"}}
"""
SEED = 11


@dataclass(frozen=True)
class TrackData:
    """Request paths (path and query, no host) by kind, as they appear in the composed messages."""

    home: Path
    campaign_id: str
    recipients: int
    opens: list[str]  # /o/<token>.gif, one per recipient
    links: list[str]  # /c/<token>/<N>: a static link of links.json
    redirects: list[str]  # /r?t=&s=&u=: a templated link, signed

    def scenarios(self) -> dict[str, list[str]]:
        """What wrk cycles through: opens; clicks (/c and /r alternating, 302); a mix of 1 open to 2 clicks."""
        rnd = random.Random(SEED)
        clicks = [path for pair in zip(self.links, self.redirects) for path in pair]
        mix = [path for triple in zip(self.opens, self.links, self.redirects) for path in triple]
        rnd.shuffle(mix)  # consecutive requests are different recipients and kinds, as from many mail clients
        return {"opens": self.opens, "clicks": clicks, "mix": mix}


def build(work: Path, recipients: int, base_url: str) -> TrackData:
    """Ingest, plan and compose a `recipients`-subscriber campaign under `work/home`; its URLs start with `base_url`."""
    from mailflow.settings import load_settings
    from mailflow.tasks.core.warehouse import connect, migrate
    from mailflow.tasks.files.manifest import campaign_dir, chunk_entries, read_manifest
    from mailflow.tasks.plan.audience import PlanOptions, plan
    from mailflow.tasks.plan.campaign import load_campaign
    from mailflow.tasks.plan.preview import template_check
    from mailflow.tasks.send.chunk import composer_for, preflight

    home = work / "home"
    settings = load_settings(overrides={"home": str(home), "tracking": {"base_url": base_url}},
                             environ={"MAILFLOW_TRACKING__SECRET": SECRET})
    (work / "campaign.yaml").write_text(CAMPAIGN, encoding="utf-8")
    spec = load_campaign(work / "campaign.yaml")
    with connect(settings.warehouse) as con:
        migrate(con)
        add_subscribers(con, recipients)
        result = plan(con, home, spec, settings.send.chunk_size,
                      PlanOptions.from_settings(settings, check=template_check(settings)))
    if result.audience_size != recipients:
        raise RuntimeError(f"track bench: planned {result.audience_size} recipients of {recipients} ingested")
    folder = campaign_dir(home, spec.campaign_id)
    chunks = [folder / entry.file for entry in chunk_entries(read_manifest(home, spec.campaign_id))]
    preflight(settings, spec, chunks[0], 5)  # as the send stage starts: links.json written
    composer = composer_for(settings, spec)
    opens, links, redirects = [], [], []
    base = re.escape(base_url.rstrip("/"))
    pattern = re.compile(rf'(?:src|href)="{base}(/[ocr][/?][^"]*)"')
    for chunk in chunks:
        for row in pl.read_parquet(chunk).iter_rows(named=True):
            found = [html.unescape(p) for p in pattern.findall(html_part(composer.compose(row).data))]
            opens += [p for p in found if p.startswith("/o/")]
            links += [p for p in found if p.startswith("/c/")]
            redirects += [p for p in found if p.startswith("/r?")][row["subscriber_id"] % 12:][:1]  # one story each
    if not len(opens) == len(links) == len(redirects) == recipients:
        raise RuntimeError(f"track bench: {recipients} messages gave {len(opens)} open, {len(links)} link and "
                           f"{len(redirects)} redirect URLs; expected one of each per message")
    return TrackData(home, spec.campaign_id, recipients, opens, links, redirects)


def add_subscribers(con, n: int) -> None:
    people = pl.DataFrame([{"email": r["email"], "first_name": r["first_name"], "last_name": r["last_name"],
                            "attributes": json.dumps({k: r[k] for k in ("country", "plan", "signup_date")})}
                           for r in subscriber_rows(n, bad_fraction=0.0, seed=SEED, reject_fraction=0.0)])
    con.register("bench_people", people)
    con.execute("INSERT INTO subscribers (email, email_original, first_name, last_name, status, attributes) "
                "SELECT email, email, first_name, last_name, 'active', attributes::JSON FROM bench_people")
    con.unregister("bench_people")


def html_part(message: bytes) -> str:
    """The decoded text/html part (compat32 parsing: ten times quicker than the default policy's)."""
    part = next(p for p in email.message_from_bytes(message).walk() if p.get_content_type() == "text/html")
    return part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")


def write_paths(path: Path, paths: list[str]) -> Path:
    """One request path a line, as bench/track_wrk.lua reads them."""
    path.write_text("".join(p + "\n" for p in paths), encoding="ascii")
    return path
