"""One-click unsubscribes (RFC 8058) over real HTTP: durable before the 200, even against SIGKILL, and honoured by a running send."""

from __future__ import annotations

import asyncio
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import pytest

from mailflow.tasks.demo.receiver import Fault, Hold, Receiver, free_port
from mailflow.tasks.send.chunk import preflight, send_chunk
from tests.support.campaign import final_records, write_plan
from tests.support.tracking import (
    SPEC,
    event_lines,
    send_campaign,
    serve_process,
    service,
    stop_process,
    suppression_lines,
    track_settings,
)

pytestmark = pytest.mark.integration
EMAILS = ["ann@example.com", "bob@example.org", "cy@example.net"]


def test_a_one_click_post_without_cookies_unsubscribes_at_once_with_200_and_no_redirect(home, receiver):
    with service(track_settings(home, receiver.port)) as (settings, url):
        mails = send_campaign(settings, receiver, EMAILS)
        with httpx.Client() as http:  # no cookie, no session: only what the mail client sends
            answer = http.post(mails["bob@example.org"].unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and "location" not in answer.headers and "set-cookie" not in answer.headers
        # acknowledged means on disk already, not when the service stops
        assert [(s["email"], s["cause"], s["source"]) for s in suppression_lines(settings.home)] == [
            ("bob@example.org", "unsubscribe", "news")]
        assert [(e["type"], e["subscriber_id"], e["variant"]) for e in event_lines(settings.home)] == [("unsubscribe", 2, "A")]


def test_a_one_click_whose_chunk_files_are_gone_is_still_acknowledged_and_logged_for_the_aggregate(home, receiver):
    with service(track_settings(home, receiver.port)) as (settings, url):
        mails = send_campaign(settings, receiver, EMAILS)
        for chunk in (settings.home / "campaigns" / "news" / "chunks").glob("*.parquet"):
            chunk.unlink()  # e.g. cleaned up after the send: the link in the mail must keep working
        with httpx.Client() as http:
            answer = http.post(mails["cy@example.net"].unsubscribe_url, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and "location" not in answer.headers
        # no address to write to the suppression log; the durable event suppresses by subscriber id at aggregate
        assert suppression_lines(settings.home) == []
        assert [(e["type"], e["subscriber_id"]) for e in event_lines(settings.home)] == [("unsubscribe", 3)]


def test_an_unsubscribe_during_a_running_send_suppresses_the_recipient_later_in_that_campaign(home):
    """Bob unsubscribes (from last week's mail) while this week's campaign is on the wire to Ann:
    the sender, reading the suppression logs before each recipient, never mails him."""
    hold = Hold()
    with Receiver(record=True) as receiver, \
            service(track_settings(home, receiver.port, suppression_refresh=0)) as (settings, url):
        earlier = send_campaign(settings, receiver, EMAILS, replace(SPEC, name="Earlier", campaign_id="earlier"))
        receiver.handler.faults["ann@example.com"] = Fault("DATA", hold=hold)  # this week's first message waits
        (chunk,) = write_plan(settings.home, SPEC, [(EMAILS, "A", None, False)])
        preflight(settings, SPEC, chunk, 1)
        counts: dict = {}
        sender = threading.Thread(target=lambda: counts.update(asyncio.run(send_chunk(settings, SPEC, chunk))))
        sender.start()
        try:
            assert hold.arrived.wait(60), "the campaign's first message never reached the receiver"
            assert httpx.post(earlier["bob@example.org"].unsubscribe_url).status_code == 200
        finally:
            hold.released.set()
            sender.join(60)
    assert counts == {"skipped": 0, "in_doubt": 0, "delivered": 2, "suppressed": 1}
    assert {sid: r["status"] for sid, r in final_records(settings).items()} == {1: "delivered", 2: "suppressed", 3: "delivered"}
    this_week = [m.recipients[0] for m in receiver.received[len(EMAILS):]]
    assert this_week == ["ann@example.com", "cy@example.net"]


def test_a_service_killed_with_sigkill_loses_no_acknowledged_unsubscribe_and_logs_no_address(home, receiver):
    emails = [f"reader{i:02d}@example.com" for i in range(24)]
    port = free_port()
    settings = track_settings(home, receiver.port, tracking={"base_url": f"http://127.0.0.1:{port}"})
    mails = send_campaign(settings, receiver, emails)
    proc = serve_process(home, port, workers=2)
    try:
        def unsubscribe(mail):
            with httpx.Client() as http:  # a connection each: both workers take some
                return mail.email, http.post(mail.unsubscribe_url).status_code

        with ThreadPoolExecutor(8) as pool:
            acknowledged = {email for email, status in pool.map(unsubscribe, mails.values()) if status == 200}
    finally:
        output = stop_process(proc, signal.SIGKILL)  # master and workers, with no chance to flush anything
    assert acknowledged == set(emails)
    assert sorted(s["email"] for s in suppression_lines(home)) == sorted(emails)
    unsubscribes = [e for e in event_lines(home) if e["type"] == "unsubscribe"]
    assert sorted(e["subscriber_id"] for e in unsubscribes) == list(range(1, len(emails) + 1))
    assert len({p.name.split("-")[1] for p in (home / "events").glob("*.ndjson")}) >= 1
    logged = output + "".join(p.read_text() for p in (home / "events").glob("*.ndjson"))
    assert "tracking service on" in output
    assert not [e for e in emails if e in logged] and "@" not in logged, "no address in the service's output or events"
