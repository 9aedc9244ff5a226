"""A sender killed with SIGKILL mid-campaign: nothing resent, nothing lost, the in-doubt set exact."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from mailflow.receiver import Fault, Receiver
from mailflow.settings import Relay
from tasks.aggregate import load_logs
from tasks.ledger import ledger_path, logged_subscribers
from tasks.send import send_chunk
from tests.test_send import SPEC, write_chunk

pytestmark = pytest.mark.integration

RUN_CHUNK = """
import asyncio, pickle, sys
from tasks.send import send_chunk
settings, spec, chunk = pickle.load(open(sys.argv[1], "rb"))
asyncio.run(send_chunk(settings, spec, chunk))
"""


def with_relay(settings, port, connections=4):
    pool = replace(settings.pool("default"), relays=(Relay("127.0.0.1", port),), connections=connections)
    return replace(settings, smtp=replace(settings.smtp, pools={"default": pool}, timeout=300))


def wait_for(condition, what, limit=60.0):
    deadline = time.monotonic() + limit  # a bound on the wait, not a timing assumption
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}: {condition.__doc__ or ''}")
        time.sleep(0.05)


def test_sigkill_leaves_exactly_the_messages_on_the_wire_in_doubt(settings, tmp_path):
    import asyncio

    emails = [f"u{i:02d}@example.com" for i in range(40)]
    stalled = emails[10:14]  # the server takes these messages and never answers
    chunk = write_chunk(tmp_path / "c.parquet", emails)
    ids = {email: i + 1 for i, email in enumerate(emails)}
    path = ledger_path(settings.home, "news", 0)
    with Receiver(record=True, faults={a: Fault("DATA", stall=True) for a in stalled}) as rx:
        job = tmp_path / "job.pkl"
        job.write_bytes(pickle.dumps((with_relay(settings, rx.port), SPEC, chunk)))
        # Pickled settings carry no secret: the sender reads it from its environment, as a Prefect worker does
        proc = subprocess.Popen([sys.executable, "-c", RUN_CHUNK, str(job)],
                                env={**os.environ, "MAILFLOW_TRACKING__SECRET": settings.tracking.secret.reveal()})
        try:
            def stuck():
                logged = logged_subscribers(path)
                stuck.__doc__ = str(sorted(logged.items()))
                return sorted(s for s, st in logged.items() if st == "in_flight") == [ids[a] for a in stalled] \
                    and sum(st == "delivered" for st in logged.values()) == 10
            wait_for(stuck, f"four connections stuck on the stalled recipients (ledger: {path})")
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        first_run = sorted(r for m in rx.received for r in m.recipients)
    assert first_run == emails[:10]

    logged = logged_subscribers(path)
    assert {s for s, st in logged.items() if st == "in_flight"} == {ids[a] for a in stalled}
    assert {s for s, st in logged.items() if st == "delivered"} == set(range(1, 11))

    with Receiver(record=True) as rx2:
        counts = asyncio.run(send_chunk(with_relay(settings, rx2.port), SPEC, chunk))
        resumed = sorted(r for m in rx2.received for r in m.recipients)
    assert counts["skipped"] == 10 and counts["in_doubt"] == 4 and counts["delivered"] == 26
    assert resumed == emails[14:], "nothing delivered is resent, in-doubt messages are not resent by default"
    assert set(first_run).isdisjoint(resumed)

    from tasks.warehouse import connect
    from tasks.ingest import ingest_file
    from tests.conftest import write_csv

    with connect(settings.warehouse) as con:
        ingest_file(con, write_csv(tmp_path / "s.csv", "email\n" + "\n".join(emails) + "\n"))
        load_logs(con, settings)
        statuses = dict(con.execute("SELECT status, count(*) FROM deliveries GROUP BY ALL").fetchall())
    assert statuses == {"delivered": 36, "in_doubt": 4}


def test_in_doubt_messages_are_resent_when_configured(settings, tmp_path):
    import asyncio

    chunk = write_chunk(tmp_path / "c.parquet", ["a@example.com", "b@example.com"])
    path = ledger_path(settings.home, "news", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"subscriber_id": 2, "status": "in_flight"}) + "\n")
    resend = replace(settings, send=replace(settings.send, resend_in_doubt=True))
    with Receiver(record=True) as rx:
        counts = asyncio.run(send_chunk(with_relay(resend, rx.port), SPEC, chunk))
    assert counts["delivered"] == 2 and sorted(r for m in rx.received for r in m.recipients) == ["a@example.com", "b@example.com"]
