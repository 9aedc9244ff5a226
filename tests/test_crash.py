"""A send stopped mid-campaign (SIGKILL, Ctrl-C once or twice): nothing resent, nothing lost, the in-doubt set exact."""

import json
import os
import pickle
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import replace

import pytest

from mailflow.settings import Relay
from mailflow.tasks.aggregate.aggregate import load_logs
from mailflow.tasks.demo.receiver import Fault, Receiver
from mailflow.tasks.files.ledger import ledger_path, logged_subscribers
from mailflow.tasks.files.manifest import read_manifest
from mailflow.tasks.send.chunk import send_chunk
from tests.support.campaign import SPEC, write_chunk
from tests.support.commands import finish, group_gone, ledger_lines, mailflow_send, planned_campaign, said, wait_for

pytestmark = pytest.mark.integration

RUN_CHUNK = """
import asyncio, pickle, sys
from mailflow.tasks.send.chunk import send_chunk
settings, spec, chunk = pickle.load(open(sys.argv[1], "rb"))
asyncio.run(send_chunk(settings, spec, chunk))
"""


def with_relay(settings, port, connections=4):
    pool = replace(settings.pool("default"), relays=(Relay("127.0.0.1", port),), connections=connections)
    return replace(settings, smtp=replace(settings.smtp, pools={"default": pool}, timeout=300))


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

    from mailflow.tasks.core.warehouse import connect
    from mailflow.tasks.ingest.ingest import ingest_file
    from tests.support.inputs import write_csv

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


INTERRUPTED = "mailflow: interrupted — run the same command to resume"


def test_ctrl_c_mid_send_lets_messages_on_the_wire_finish_and_a_rerun_completes_without_duplicates(tmp_path):
    home, emails = planned_campaign(tmp_path)
    chunks = len(read_manifest(home, "stopped")["chunks"])
    with Receiver(record=True, delay=1.0) as rx:  # a slow server: each message is on the wire for a second
        proc = mailflow_send(home, rx.port)
        try:
            wait_for(lambda: len(ledger_lines(home)) >= 8, "the send under way", limit=180)
        finally:
            os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
        out, err, seconds = finish(proc, 15)
        print(f"signal to exit: {seconds:.2f} s")
        assert proc.returncode == 130, err
        assert said(err) == [INTERRUPTED] and "Traceback" not in err

        records = [json.loads(line) for line in ledger_lines(home)]
        last = {r["subscriber_id"]: r["status"] for r in records}
        assert set(last.values()) == {"delivered"}, "every message on the wire finished and its outcome was logged"
        assert len(last) == len({r for m in rx.received for r in m.recipients}) < len(emails)
        assert len(list((home / "ledger" / "stopped").glob("*.ndjson"))) < chunks, "the chunks not started stay untouched"

        rx.handler.delay = 0.0
        rerun = mailflow_send(home, rx.port)
        out, err, _ = finish(rerun, 300)
        assert rerun.returncode == 0, err
        assert f"{len(last)} already sent before" in out
        received = Counter(r for m in rx.received for r in m.recipients)
    assert received == Counter(emails), "every recipient received exactly one message"
    delivered = Counter(json.loads(line)["subscriber_id"] for line in ledger_lines(home)
                        if json.loads(line)["status"] == "delivered")
    assert len(delivered) == len(emails) and set(delivered.values()) == {1}


def test_a_second_ctrl_c_exits_at_once_and_leaves_the_messages_on_the_wire_in_doubt(tmp_path):
    from mailflow.tasks.files.control import stop_path

    home, emails = planned_campaign(tmp_path)
    # Messages stall on the wire for a minute and the grace is two: only the second signal ends the command soon.
    with Receiver(record=True, delay=60.0) as rx:
        proc = mailflow_send(home, rx.port, MAILFLOW_SEND__INTERRUPT_GRACE="120")
        try:
            wait_for(lambda: len(ledger_lines(home)) >= 2, "messages on the wire", limit=180)
            os.killpg(proc.pid, signal.SIGINT)
            wait_for(lambda: stop_path(home, "stopped").exists(), "the first Ctrl-C's stop request")
        finally:
            os.killpg(proc.pid, signal.SIGINT)
        out, err, seconds = finish(proc, 10)
        print(f"second signal to exit: {seconds:.2f} s\nstderr:\n{err}")
        assert proc.returncode == 130, err
        assert said(err) == [INTERRUPTED] and "Traceback" not in err
        wait_for(lambda: group_gone(proc.pid), "the send workers gone with the command")

        records = [json.loads(line) for line in ledger_lines(home)]  # every record whole
        in_doubt = {r["subscriber_id"] for r in records} - {r["subscriber_id"] for r in records if r["status"] != "in_flight"}
        assert in_doubt and all(r["status"] == "in_flight" for r in records)

        rx.handler.delay = 0.0
        rerun = mailflow_send(home, rx.port)
        out, err, _ = finish(rerun, 300)
        assert rerun.returncode == 0, err
        assert f"{len(in_doubt)} in doubt, not resent" in out
        received = Counter(r for m in rx.received for r in m.recipients)
    assert max(received.values()) == 1 and len(received) >= len(emails) - len(in_doubt)
    records = [json.loads(line) for line in ledger_lines(home)]
    delivered = Counter(r["subscriber_id"] for r in records if r["status"] == "delivered")
    assert set(delivered.values()) == {1} and len(delivered) == len(emails) - len(in_doubt)
    assert in_doubt.isdisjoint(delivered), "a message in doubt is not sent again"


def test_a_thread_that_dies_after_a_stop_request_is_not_reported_and_before_one_is(monkeypatch):
    import threading

    from mailflow import interrupt

    reported, requested = [], threading.Event()  # never the real flag: a watcher installed by another test would exit
    monkeypatch.setattr(interrupt, "_requested", requested)
    monkeypatch.setattr(interrupt, "_default_thread_hook", lambda args: reported.append(str(args.exc_value)))
    monkeypatch.setattr(threading, "excepthook", interrupt._thread_died)

    def die() -> None:
        raise RuntimeError("a worker was interrupted")

    def run() -> None:
        thread = threading.Thread(target=die)
        thread.start()
        thread.join()

    run()
    assert reported == ["a worker was interrupted"]  # no stop requested: Python's own report
    requested.set()
    run()
    assert reported == ["a worker was interrupted"]  # winding down after Ctrl-C: only the one line, said elsewhere
