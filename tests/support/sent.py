"""A campaign really sent to a loopback receiver, for bounce tests: its settings and each recipient's message as received."""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailflow.settings import Settings
from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.demo.receiver import Received, Receiver
from mailflow.tasks.files.manifest import campaign_dir
from mailflow.tasks.send.chunk import send_chunk
from tests.support.campaign import SECRET_ENV, SPEC, settings_for, write_chunk

EMAILS = ["ann@example.com", "bob@example.com", "cy@example.com"]  # subscriber ids 1, 2, 3


def send_to_receiver(home: Path, emails: list[str] = EMAILS) -> tuple[Settings, dict[str, Received]]:
    with Receiver(record=True) as rx:
        settings = settings_for(home, f"127.0.0.1:{rx.port}")
        chunk = write_chunk(campaign_dir(home, SPEC.campaign_id) / "chunks" / "chunk-00000.parquet", emails)
        assert asyncio.run(send_chunk(settings, SPEC, chunk))["delivered"] == len(emails)
        return settings, {m.recipients[0]: m for m in rx.received}


def signer() -> TokenSigner:
    return TokenSigner(SECRET_ENV["MAILFLOW_TRACKING__SECRET"])
