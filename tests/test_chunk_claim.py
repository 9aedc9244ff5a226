"""One chunk, one sender: a second run of a chunk being sent leaves it alone, and a dead sender's claim goes with it."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
from collections import Counter

import polars as pl
import pytest

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.tasks.files.suppress import SuppressionLog
from mailflow.tasks.send.chunk import load_plan, send_chunk
from mailflow.tasks.send.schedule import chunk_ledger
from mailflow.tasks.send.spread import chunk_counts, chunk_name, chunk_named
from tests.support.commands import planned_campaign

HOLD = """import sys, time
from pathlib import Path
from mailflow.tasks.files.ledger import LedgerWriter
writer = LedgerWriter(Path(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def planned(tmp_path, receiver):
    home, emails = planned_campaign(tmp_path, recipients=40, chunk_size=20)
    settings = load_settings(overrides={"home": str(home), "tracking": {"base_url": "https://t.example"},
                                        "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{receiver.port}"]}}}},
                             environ={"MAILFLOW_TRACKING__SECRET": "test-secret"})
    spec, chunks = load_plan(settings, "stopped")
    return settings, spec, chunks, emails


def hold_ledger(path) -> subprocess.Popen:
    """Another process sending the chunk, as far as its ledger's lock can tell."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def sent_to(receiver) -> Counter:
    return Counter(rcpt for message in receiver.received for rcpt in message.recipients)


@pytest.mark.integration
def test_a_second_run_of_a_chunk_being_sent_sends_nothing_and_a_dead_senders_claim_is_gone(planned, receiver):
    settings, spec, chunks, emails = planned
    chunk = chunks[0]
    ledger = chunk_ledger(settings.home, "stopped", chunk)
    holder = hold_ledger(ledger)
    try:
        assert asyncio.run(send_chunk(settings, spec, chunk.path, busy_ok=True)) == {"busy": 1}
        assert sent_to(receiver) == Counter() and ledger.read_bytes() == b""
        with pytest.raises(MailflowError, match="another process is sending this chunk"):
            asyncio.run(send_chunk(settings, spec, chunk.path))  # the flow's own chunk tasks say so loudly
    finally:
        holder.send_signal(signal.SIGKILL)  # dies holding it, as a worker killed mid-chunk would
        holder.wait()
    # No stale claim to clear by hand: the kernel (or the NFS server, when the client is gone) drops the lock.
    counts = asyncio.run(send_chunk(settings, spec, chunk.path, busy_ok=True))
    first = set(pl.read_parquet(chunk.path)["email"])
    assert counts["delivered"] == 20 and sent_to(receiver) == Counter(dict.fromkeys(first, 1))
    assert chunk_counts(settings.home, "stopped", chunk) == {"delivered": 20}


@pytest.mark.integration
def test_a_chunk_run_again_after_it_finished_sends_no_one_twice(planned, receiver):
    settings, spec, chunks, emails = planned
    for _ in range(2):
        for chunk in chunks:
            asyncio.run(send_chunk(settings, spec, chunk.path, busy_ok=True))
    assert sent_to(receiver) == Counter(dict.fromkeys(emails, 1))
    records = [json.loads(line) for chunk in chunks
               for line in chunk_ledger(settings.home, "stopped", chunk).read_text().splitlines()]
    outcomes = Counter(r["subscriber_id"] for r in records if r["status"] != "in_flight")
    assert len(outcomes) == len(emails) and set(outcomes.values()) == {1}


def test_a_chunk_is_named_by_its_manifest_file_and_an_unknown_name_is_refused(planned):
    settings, _, chunks, _ = planned
    names = [chunk_name(settings.home, "stopped", c) for c in chunks]
    assert [n.rpartition("/")[2] for n in names] == ["chunk-00000.parquet", "chunk-00001.parquet"]
    assert all(not n.startswith("/") and (settings.home / "campaigns" / "stopped" / n).exists() for n in names)
    assert chunk_named(settings.home, "stopped", chunks, names[1]) is chunks[1]
    with pytest.raises(MailflowError, match=r"no chunk 'chunk-00000.parquet' in its plan"):
        chunk_named(settings.home, "stopped", chunks, "chunk-00000.parquet")  # not how the manifest names it


def test_suppression_logs_of_senders_on_two_machines_never_share_a_file(tmp_path):
    """A pid is unique on one machine only: the file name carries the host as well."""
    path = SuppressionLog(tmp_path, "send-x").path
    assert path.name.startswith("send-x-") and socket.gethostname().replace("/", "_") in path.name
