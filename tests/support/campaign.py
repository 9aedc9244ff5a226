"""A campaign to send in tests: its spec, a chunk file, settings for relays or MX, and the ledger's verdict."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import polars as pl

from mailflow.settings import Settings, load_settings
from mailflow.tasks.files.ledger import ledger_path
from mailflow.tasks.plan.campaign import CampaignSpec

SPEC = CampaignSpec(name="News", campaign_id="news", from_addr="News <news@example.com>",
                    subject="Hi {{ subscriber.first_name | default('there') }}", template="newsletter")
# A composed message's spec: the template "t" is written by the test into its own folder.
COMPOSE_SPEC = CampaignSpec(name="Spring", campaign_id="spring", from_addr="Shop News <news@example.com>",
                            subject="Hi {{ subscriber.first_name }}", template="t", reply_to="help@example.com")
TRACKING = {"base_url": "https://t.example"}
SECRET_ENV = {"MAILFLOW_TRACKING__SECRET": "test-secret"}


def write_chunk(path: Path, emails: list[str], chunk_id: int = 0, names: list[str] | None = None) -> Path:
    """A chunk file as planning writes it: subscriber ids 1..n in the order of `emails`."""
    frame = pl.DataFrame({
        "chunk_id": [chunk_id] * len(emails), "subscriber_id": list(range(1, len(emails) + 1)),
        "variant": ["A"] * len(emails), "email": emails,
        "first_name": names or [f"N{i}" for i in range(len(emails))], "last_name": [None] * len(emails),
        "attributes": ['{"plan": "pro"}'] * len(emails),
    }, schema_overrides={"chunk_id": pl.Int32, "subscriber_id": pl.Int64, "last_name": pl.String})
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.write_parquet(path)
    return path


def settings_for(home: Path, *relays: str, choose: str = "message", shaping: dict | None = None,
                 timeout: float = 5.0, **send) -> Settings:
    """Settings sending through a pool of `relays` ("host:port"), two connections each."""
    return load_settings(overrides={
        "home": str(home), "smtp": {"timeout": timeout, "pools": {"default": {
            "relays": list(relays), "connections": 2, "choose": choose}}},
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
