"""A campaign to send in tests: its spec, a chunk file, settings for relays or MX, and the ledger's verdict."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl

from mailflow.settings import Settings, load_settings
from mailflow.tasks.files.ledger import ledger_path
from mailflow.tasks.files.manifest import ChunkEntry, campaign_dir, write_manifest
from mailflow.tasks.plan.campaign import CampaignSpec

SPEC = CampaignSpec(name="News", campaign_id="news", from_addr="News <news@example.com>",
                    subject="Hi {{ subscriber.first_name | default('there') }}", template="newsletter")
# A composed message's spec: the template "t" is written by the test into its own folder.
COMPOSE_SPEC = CampaignSpec(name="Spring", campaign_id="spring", from_addr="Shop News <news@example.com>",
                            subject="Hi {{ subscriber.first_name }}", template="t", reply_to="help@example.com")
TRACKING = {"base_url": "https://t.example"}
SECRET_ENV = {"MAILFLOW_TRACKING__SECRET": "test-secret"}


def write_chunk(path: Path, emails: list[str], chunk_id: int = 0, names: list[str] | None = None,
                variant: str = "A", first_id: int = 1) -> Path:
    """A chunk file as planning writes it: subscriber ids first_id.. in the order of `emails`."""
    frame = pl.DataFrame({
        "chunk_id": [chunk_id] * len(emails), "subscriber_id": list(range(first_id, first_id + len(emails))),
        "variant": [variant] * len(emails), "email": emails,
        "first_name": names or [f"N{i}" for i in range(len(emails))], "last_name": [None] * len(emails),
        "attributes": ['{"plan": "pro"}'] * len(emails),
    }, schema_overrides={"chunk_id": pl.Int32, "subscriber_id": pl.Int64, "last_name": pl.String})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def settings_for(home: Path, *relays: str, choose: str = "message", shaping: dict | None = None,
                 timeout: float = 5.0, **send) -> Settings:
    """Settings sending through a pool of `relays` ("host:port"), two connections each; given a `shaping`
    table, the pool is shaped by provider (a relay pool is not by default)."""
    return load_settings(overrides={
        "home": str(home), "smtp": {"timeout": timeout, "pools": {"default": {
            "relays": list(relays), "connections": 2, "choose": choose, "shaping": "providers" if shaping else "none"}}},
        "send": {"chunk_size": 100, **send}, "shaping": shaping or {}, "tracking": TRACKING}, environ=SECRET_ENV)


def mx_settings(home: Path, dns_port: int, mx_port: int, shaping: dict | None = None) -> Settings:
    """Settings sending straight to MX: exchangers found through the DNS stub on `dns_port`, on loopback."""
    return load_settings(overrides={
        "home": str(home), "smtp": {"mx_port": mx_port, "allow_private_mx": True},
        "dns": {"nameservers": ["127.0.0.1"], "port": dns_port}, "shaping": shaping or {},
        "tracking": TRACKING}, environ=SECRET_ENV)


def ledger_records(settings: Settings, chunk_id: int = 0) -> list[dict]:
    """Every record of a chunk's ledger, in order."""
    path = ledger_path(settings.home, SPEC.campaign_id, chunk_id)
    return [json.loads(line) for line in path.read_text().splitlines()]


def final_records(settings: Settings, chunk_id: int = 0) -> dict[int, dict]:
    """The last record per recipient, after checking no attempt of a recipient has two outcomes."""
    lines = ledger_records(settings, chunk_id)
    outcomes = Counter((r["subscriber_id"], r["attempt"]) for r in lines if r["status"] != "in_flight")
    assert max(outcomes.values()) == 1, "an attempt was logged with two outcomes"
    return {r["subscriber_id"]: r for r in lines}


def write_plan(home: Path, spec: CampaignSpec, chunks: list[tuple[list[str], str, str | None, bool]]) -> list[Path]:
    """A planned campaign as plan writes it (manifest v2), without a warehouse: one chunk per
    (emails, variant, not_before, held), subscriber ids running on across chunks."""
    folder, entries, paths, first = campaign_dir(home, spec.campaign_id), [], [], 1
    for chunk_id, (emails, variant, not_before, held) in enumerate(chunks):
        name = f"chunks/chunk-{chunk_id:05d}.parquet"
        paths.append(write_chunk(folder / name, emails, chunk_id, variant=variant, first_id=first))
        entries.append(ChunkEntry(name, variant, len(emails), not_before, held))
        first += len(emails)
    write_manifest(folder, spec.as_dict(), entries, first - 1)
    return paths
