"""Sending over a real SMTP server on loopback: outcomes, the ledger, resume without resending."""

import asyncio
import json
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_string
from email.policy import default

import polars as pl
import pytest

from mailflow.errors import NeedsAttention
from mailflow.settings import Relay, load_settings
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.smtp import Cause, Outcome, outcome_of_reply, outcome_of_session_refusal
from mailflow.tasks.demo.receiver import Receiver, free_port
from mailflow.tasks.files.control import clear_stop, request_stop
from mailflow.tasks.files.ledger import LedgerWriter, RecipientState, ledger_path, ledger_state, logged_subscribers
from mailflow.tasks.files.lifecycle import record_transition, state_of, transitions
from mailflow.tasks.files.suppress import write_snapshot
from mailflow.tasks.plan.campaign import Variant
from mailflow.tasks.send.chunk import classify, load_plan, preflight, relay_trouble, select_recipients, send_chunk
from mailflow.tasks.send.due import due_campaigns
from mailflow.tasks.send.schedule import begin_send, finish_send, short_time
from tests.support.campaign import SPEC, final_records, settings_for, write_chunk, write_plan
from tests.support.reference_pool import deliver_all

pytestmark = pytest.mark.integration

def ledger(settings, chunk_id=0, in_flight=False):
    """Final records (or with in_flight=True, the in-flight marks) of a chunk's ledger."""
    path = ledger_path(settings.home, "news", chunk_id)
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return [r for r in records if (r["status"] == "in_flight") == in_flight]


@pytest.mark.parametrize(
    "code,message,status,enhanced",
    [(250, "2.0.0 Ok", "delivered", "2.0.0"), (450, "4.2.1 try later", "deferred", "4.2.1"),
     (550, "5.1.1 <a@b.c>: user unknown", "bounced", "5.1.1"), (554, "no enhanced code", "bounced", None)],
)
def test_reply_mapping(code, message, status, enhanced):
    outcome = outcome_of_reply(code, message)
    assert (outcome.status, outcome.enhanced_status) == (status, enhanced)
    assert "@" not in outcome.detail


def test_chunk_is_delivered_and_every_recipient_logged_once(settings, receiver, tmp_path):
    emails = [f"u{i}@example.com" for i in range(30)] + ["x@gone.example"]
    counts = asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", emails)))
    assert counts["delivered"] == 30 and counts["bounced"] == 1
    assert sorted(r for m in receiver.received for r in m.recipients) == sorted(emails[:30])
    records = ledger(settings)
    assert sorted(r["subscriber_id"] for r in records) == list(range(1, 32))
    bounced = [r for r in records if r["status"] == "bounced"]
    assert bounced[0]["smtp_code"] == 550 and bounced[0]["enhanced_status"] == "5.1.1"
    assert "gone.example" not in json.dumps(records), "the ledger must not carry addresses"
    marks = ledger(settings, in_flight=True)
    assert sorted(r["subscriber_id"] for r in marks) == list(range(1, 32)), "each message marked before it was sent"


def test_rerun_skips_logged_recipients(settings, receiver, tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(10)])
    path = ledger_path(settings.home, "news", 0)
    with LedgerWriter(path) as writer:  # a killed run had logged the first four
        for sid in range(1, 5):
            writer.append(type("R", (), {"__dict__": {"subscriber_id": sid, "status": "delivered"}})())
        writer._fh.write(b'{"subscriber_id": 5, "sta')  # and died mid-record
    counts = asyncio.run(send_chunk(settings, SPEC, chunk))
    assert counts["skipped"] == 4 and counts["delivered"] == 6
    assert sorted(r for m in receiver.received for r in m.recipients) == [f"u{i}@example.com" for i in range(4, 10)]
    assert set(logged_subscribers(path)) == set(range(1, 11))


def test_a_stop_request_leaves_a_chunk_not_yet_started_untouched(settings, receiver, tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(10)])
    request_stop(settings.home, "news", "interrupted")
    assert asyncio.run(send_chunk(settings, SPEC, chunk)) == {}
    assert receiver.received == [] and not ledger_path(settings.home, "news", 0).exists()
    clear_stop(settings.home, "news")  # what running the command again does
    assert asyncio.run(send_chunk(settings, SPEC, chunk))["delivered"] == 10


def test_a_stop_request_mid_chunk_takes_no_further_recipient_and_logs_those_on_the_wire(settings, receiver, tmp_path):
    emails = [f"u{i:02d}@example.com" for i in range(40)]
    chunk = write_chunk(tmp_path / "c.parquet", emails)
    connections = settings.pool("default").connections

    def stopped():  # asked before each recipient is taken: true once eight messages have arrived
        return len(receiver.received) >= 8

    counts = asyncio.run(send_chunk(settings, SPEC, chunk, interrupted=stopped))
    first = [r for m in receiver.received for r in m.recipients]
    # Each connection may have taken one recipient just before the eighth arrived; none after.
    assert 8 <= len(first) <= 8 + connections
    assert counts["delivered"] == len(first)
    logged = logged_subscribers(ledger_path(settings.home, "news", 0))
    assert set(logged.values()) == {"delivered"}, "every message on the wire finished and was logged"
    assert sorted(emails[sid - 1] for sid in logged) == sorted(first)

    counts = asyncio.run(send_chunk(settings, SPEC, chunk))  # the next run sends the rest, once
    assert counts["skipped"] == len(first) and counts["delivered"] == 40 - len(first)
    assert sorted(r for m in receiver.received for r in m.recipients) == emails


def test_header_injection_fails_one_recipient_only(settings, receiver, tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", ["a@example.com", "b@example.com"], names=["Ann", "Eve\r\nBcc: x@example.org"])
    counts = asyncio.run(send_chunk(settings, SPEC, chunk))
    assert counts == {"skipped": 0, "in_doubt": 0, "delivered": 1, "failed": 1}
    failed = [r for r in ledger(settings) if r["status"] == "failed"]
    assert "line break" in failed[0]["detail"]
    assert len(receiver.received) == 1


def test_any_error_while_rendering_one_recipient_fails_that_recipient_only(tmp_path):
    n = 30
    visits = ['{"visits": 3}'] * 25 + ['{"visits": "many"}'] + ['{"visits": 3}'] * 4  # the 26th makes a TypeError
    frame = pl.DataFrame({"chunk_id": [0] * n, "subscriber_id": list(range(1, n + 1)), "variant": ["A"] * n,
                          "email": [f"u{i}@example.com" for i in range(n)], "first_name": ["A"] * n,
                          "last_name": [None] * n, "attributes": visits},
                         schema_overrides={"chunk_id": pl.Int32, "subscriber_id": pl.Int64, "last_name": pl.String})
    frame.write_parquet(tmp_path / "c.parquet")
    spec = replace(SPEC, subject="Visit number {{ subscriber.visits + 1 }}")
    with Receiver(record=True) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}")
        counts = asyncio.run(send_chunk(settings, spec, tmp_path / "c.parquet"))
    assert (counts["delivered"], counts["failed"]) == (29, 1)
    assert len(rx.received) == 29
    [failed] = [r for r in final_records(settings).values() if r["status"] == "failed"]
    assert failed["subscriber_id"] == 26
    assert "TypeError" in failed["detail"]


def test_a_second_sender_of_the_same_chunk_is_refused(settings, tmp_path):
    from mailflow.errors import MailflowError

    path = ledger_path(settings.home, "news", 0)
    with LedgerWriter(path):
        with pytest.raises(MailflowError, match="another process"):
            LedgerWriter(path)


def test_unreachable_relay_defers_every_recipient():
    async def run():
        relay = Relay("127.0.0.1", free_port())
        items = [(i, Envelope("a@example.com", f"r{i}@example.com", b"Subject: x\r\n\r\nx\r\n")) for i in range(5)]
        return [o async for _, o in deliver_all(items, relay, 2, "test.example", 5)]

    outcomes = asyncio.run(run())
    assert len(outcomes) == 5 and {o.status for o in outcomes} == {"deferred"}
    assert all(o.smtp_code is None for o in outcomes)


def test_temporary_refusal_is_deferred_and_connection_reused():
    with Receiver(record=True, replies={"busy.example": "450 4.2.1 Mailbox busy, try later"}) as rx:
        async def run():
            items = [(i, Envelope("a@example.com", f"r{i}@{'busy' if i % 2 else 'ok'}.example",
                                  b"Subject: x\r\n\r\nx\r\n")) for i in range(6)]
            return {k: o async for k, o in deliver_all(items, Relay("127.0.0.1", rx.port), 1, "t.example", 5)}

        outcomes = asyncio.run(run())
    assert [outcomes[i].status for i in range(6)] == ["delivered", "deferred"] * 3
    assert len(rx.received) == 3


def test_an_unencodable_address_fails_that_recipient_and_the_chunk_finishes(settings, receiver, tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", ["a@example.com", "üser@example.com", "b@example.com"])
    counts = asyncio.run(asyncio.wait_for(send_chunk(settings, SPEC, chunk), 60))
    assert counts["delivered"] + counts.get("failed", 0) == 3
    assert len(ledger(settings)) == 3


def relay_settings(home, port):
    return load_settings(overrides={"home": str(home), "smtp": {"pools": {"default": {"relays": [f"127.0.0.1:{port}"]}}},
                                    "tracking": {"base_url": "https://t.example"}},
                         environ={"MAILFLOW_TRACKING__SECRET": "test-secret"})


@pytest.mark.parametrize("smtputf8", [True, False], ids=["relay with SMTPUTF8", "relay without"])
def test_a_non_ascii_recipient_goes_with_smtputf8_or_fails_alone_and_never_stops_the_campaign(home, tmp_path, smtputf8):
    emails = ["josé@example.com", "a@example.com", "日本@example.com", "b@example.com"]
    with Receiver(record=True, server_options={"enable_SMTPUTF8": smtputf8}) as rx:
        settings = relay_settings(home, rx.port)
        chunk = write_chunk(tmp_path / "c.parquet", emails, names=["José", "Ann", "Hana", "Bob"])
        assert len(preflight(settings, SPEC, chunk, 20)) == 4, "the dry run composes them all and stops nothing"
        counts = asyncio.run(send_chunk(settings, SPEC, chunk))
    records = {r["subscriber_id"]: r for r in ledger(settings)}
    received = {m.recipients[0]: m for m in rx.received}
    if smtputf8:
        assert counts["delivered"] == 4 and sorted(received) == sorted(emails)
        msg = message_from_string(received["josé@example.com"].data.decode("utf-8"), policy=default)  # RFC 6532
        assert (msg["To"].addresses[0].addr_spec, msg["To"].addresses[0].display_name) == ("josé@example.com", "José")
        assert "SMTPUTF8" in received["josé@example.com"].mail_options
        assert "SMTPUTF8" not in received["a@example.com"].mail_options
    else:
        assert (counts["delivered"], counts["failed"]) == (2, 2) and sorted(received) == ["a@example.com", "b@example.com"]
        for sid in (1, 3):
            assert (records[sid]["status"], records[sid]["enhanced_status"]) == ("failed", "5.6.7")
            assert "SMTPUTF8" in records[sid]["detail"] and "@" not in records[sid]["detail"]


def test_the_dry_run_stops_for_a_template_error_not_for_an_address_no_relay_takes(home, tmp_path):
    with Receiver(record=True) as rx:
        settings = relay_settings(home, rx.port)
        chunk = write_chunk(tmp_path / "c.parquet", ["a..b@example.com", "a@example.com"])
        assert len(preflight(settings, SPEC, chunk, 20)) == 1
        counts = asyncio.run(send_chunk(settings, SPEC, chunk))
        broken = replace(SPEC, subject="{{ subscriber.no_such_field }}")
        with pytest.raises(NeedsAttention, match="failed the dry-run render.*UndefinedError"):
            preflight(settings, broken, chunk, 20)
    assert (counts["delivered"], counts["failed"]) == (1, 1)
    failed = next(r for r in ledger(settings) if r["status"] == "failed")
    assert failed["subscriber_id"] == 1 and failed["detail"].startswith("the address cannot be sent to: invalid_email")


def test_an_error_while_feeding_fails_the_send_instead_of_hanging():
    def envelopes():
        yield 1, Envelope("a@example.com", "r@example.com", b"Subject: x\r\n\r\nx\r\n")
        raise RuntimeError("broken feed")

    async def run():
        with Receiver() as rx:
            return [o async for _, o in deliver_all(envelopes(), Relay("127.0.0.1", rx.port), 2, "t.example", 5)]

    with pytest.raises(RuntimeError, match="broken feed"):
        asyncio.run(asyncio.wait_for(run(), 60))


def test_a_broken_relay_pauses_the_chunk_with_a_clear_message(settings, tmp_path):
    dead = Relay("127.0.0.1", free_port())
    broken = replace(settings, smtp=replace(settings.smtp, pools={"default": replace(settings.pool("default"), relays=(dead,))}),
                     send=replace(settings.send, error_budget=5))
    chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(60)])
    with pytest.raises(NeedsAttention, match=r"stopped sending \(still `sending`, not paused\): 5 recipients in a row failed at relay"):
        asyncio.run(send_chunk(broken, SPEC, chunk))
    finals = ledger(broken)
    assert {r["status"] for r in finals} == {"deferred"} and 5 <= len(finals) < 60, "the rest are left for the next run"
    state = ledger_state(ledger_path(broken.home, "news", 0))
    assert "in_flight" not in {s.status for s in state.values()}, "those on the wire when the send paused got their outcome logged"
    # So none is left in doubt, and none waits for a retry: no server saw the deferred ones, so the next
    # run sends them at once with the unlogged ones (a relay outage must not hold them back for minutes).
    assert all(r["unsent"] for r in finals)
    frame = pl.read_parquet(chunk)
    unsent, _, attempts, counts = select_recipients(frame, state, broken, False, datetime.now(UTC))
    assert counts["in_doubt"] == 0 and counts["skipped"] == 0
    assert sorted(r["subscriber_id"] for r in unsent) == list(range(1, 61))
    assert {attempts[r["subscriber_id"]] for r in finals} == {2}, "their second attempt"


def test_suppressed_recipients_between_failures_do_not_keep_a_dead_relay_from_pausing_the_chunk(tmp_path):
    settings = settings_for(tmp_path / "h", f"127.0.0.1:{free_port()}", error_budget=20)
    emails = [f"u{i}@example.com" for i in range(200)]
    # One in ten suppressed since planning: were they to reset the count, it would never reach 20.
    write_snapshot(settings.home, pl.DataFrame({"email": emails[::10], "cause": ["unsubscribed"] * 20}))
    with pytest.raises(NeedsAttention, match=r"not paused\): 20 recipients in a row failed"):
        asyncio.run(send_chunk(settings, SPEC, write_chunk(tmp_path / "c.parquet", emails)))
    assert "suppressed" in {r["status"] for r in final_records(settings).values()}


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_a_relay_refusing_the_sender_defers_and_pauses_the_send_and_bounces_no_one(tmp_path):
    with Receiver(record=True, auth={"user": "pw"}) as rx:  # no credentials configured for this relay
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}", error_budget=5)
        chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(30)])
        with pytest.raises(NeedsAttention, match="relay refused the sender"):
            asyncio.run(send_chunk(settings, SPEC, chunk))
    records = final_records(settings).values()
    assert {(r["status"], r["kind"], r["smtp_code"]) for r in records} == {("deferred", "soft", 530)}
    assert rx.received == []


def test_a_held_back_recipient_is_known_by_its_cause_not_by_words_in_its_detail():
    suspended = Outcome("deferred", None, None, "held back while gmail cools down", cause=Cause.SUSPENDED)
    assert classify(suspended) == ("soft", "rate_limited") and not relay_trouble(suspended)
    # The words the suspension used to be recognised by, from a connection error: still the relay's trouble.
    lookalike = Outcome("deferred", None, None, "not sent: provider gmail suspended (421 4.7.0 slow down)")
    assert classify(lookalike) == ("soft", "network") and relay_trouble(lookalike)


def test_a_recipient_given_up_on_is_known_by_its_cause_not_by_its_status_code():
    expired = Outcome("bounced", None, "5.0.0", "deferred for a week", cause=Cause.EXPIRED)
    assert classify(expired) == ("soft", "expired")
    assert classify(Outcome("bounced", None, "4.4.7", "gave up: deferred too long")) == ("soft", "network")


def test_only_a_refused_relay_has_its_detail_read_without_our_own_words():
    refused = outcome_of_session_refusal(535, "5.7.8 Authentication credentials invalid")
    assert refused.cause is Cause.RELAY_REFUSED and refused.detail.startswith("relay refused the session: ")
    assert classify(refused) == ("soft", "policy")  # our "relay refused" is not read as the server's words
    # A server whose own reply reads like our prefix: every word of it is the server's, and counts.
    assert classify(replace(refused, cause=Cause.REPLY)) == ("soft", "relay_denied")


# --- The plan's chunks: variants, times, held remainders, and where the campaign stands ---------------


AB_SPEC = replace(SPEC, preheader="Spring is here", variants=(
    Variant("A"), Variant("B", subject="B: {{ subscriber.first_name }}, last days", preheader="Only B sees this")))


def parsed(received) -> dict:
    """Recipient -> its parsed message."""
    return {m.recipients[0]: message_from_string(m.data.decode(), policy=default) for m in received}


def test_each_chunk_is_composed_with_its_variants_overrides_and_the_ledger_keeps_the_variant(settings, receiver, tmp_path):
    paths = write_plan(settings.home, AB_SPEC, [(["a@example.com"], "A", None, False), (["b@example.com"], "B", None, False)])
    for path, variant in zip(paths, "AB"):
        asyncio.run(send_chunk(settings, AB_SPEC, path, variant=variant))
    messages = parsed(receiver.received)
    a, b = messages["a@example.com"], messages["b@example.com"]
    assert a["Subject"] == "Hi N0" and b["Subject"] == "B: N0, last days"
    assert ":A:" in a["Feedback-ID"] and ":B:" in b["Feedback-ID"]
    html_a, html_b = (m.get_body(("html",)).get_content() for m in (a, b))
    assert "Spring is here" in html_a and "Only B sees this" in html_b and "Spring is here" not in html_b
    assert 'style="display:none' in html_b.split("Only B sees this")[0][-300:], "the preheader is hidden"
    assert "Only B sees this" not in b.get_body(("plain",)).get_content()
    assert [r["variant"] for r in final_records(settings, 1).values()] == ["B"]


def test_chunks_not_yet_due_and_held_ones_wait_and_the_campaign_is_not_sent_meanwhile(settings, receiver, tmp_path):
    now = datetime(2026, 12, 1, tzinfo=UTC)
    later = "2026-12-03T00:00:00+00:00"
    write_plan(settings.home, AB_SPEC, [(["a@example.com"], "A", None, False), (["b@example.com"], "B", later, False),
                                        (["c@example.com", "d@example.com"], "remainder", None, True)])
    _, chunks = load_plan(settings, "news")
    plan = begin_send(settings.home, "news", chunks, "test", now)
    assert [c.variant for c in plan.due] == ["A"] and [c.variant for c in plan.waiting] == ["B"]
    assert len(plan.held) == 1 and short_time(plan.next_due) == "2026-12-03T00:00Z"
    assert state_of(settings.home, "news") == "sending"
    asyncio.run(send_chunk(settings, AB_SPEC, plan.due[0].path, variant="A"))
    done = finish_send(settings.home, "news", chunks, "test", now)
    assert (done.planned, done.settled, done.pending, done.held, done.waiting_chunks) == (2, 1, 1, 2, 1)
    assert state_of(settings.home, "news") == "sending", "a chunk still waits: not sent"
    assert due_campaigns(settings.home, now) == [], "the due chunk is sent; the next is not due"
    assert due_campaigns(settings.home, datetime(2026, 12, 3, tzinfo=UTC)) == ["news"]
    request_stop(settings.home, "news", "pause", "pause")
    record_transition(settings.home, "news", "paused", "test")
    assert due_campaigns(settings.home, datetime(2026, 12, 3, tzinfo=UTC)) == [], "a paused campaign is not due"


def test_a_campaign_whose_only_chunks_wait_is_scheduled_not_sending(settings, tmp_path):
    write_plan(settings.home, SPEC, [(["a@example.com"], "A", "2026-12-03T09:00:00+09:00", False)])
    _, chunks = load_plan(settings, "news")
    plan = begin_send(settings.home, "news", chunks, "test", datetime(2026, 12, 1, tzinfo=UTC))
    assert plan.due == [] and state_of(settings.home, "news") == "scheduled"
    assert transitions(settings.home, "news")[-1].reason == "1 chunks wait until 2026-12-03T00:00Z"


def test_after_a_relay_outage_the_next_send_takes_the_recipients_no_server_saw_at_once(tmp_path):
    port = free_port()  # nothing listens there yet: the relay is down
    settings = settings_for(tmp_path / "h", f"127.0.0.1:{port}", error_budget=5)
    emails = [f"u{i}@example.com" for i in range(30)]
    write_plan(settings.home, SPEC, [(emails, "A", None, False)])
    _, chunks = load_plan(settings, "news")
    now = datetime.now(UTC)
    begin_send(settings.home, "news", chunks, "test", now)
    with pytest.raises(NeedsAttention, match="paused"):
        asyncio.run(send_chunk(settings, SPEC, chunks[0].path))
    done = finish_send(settings.home, "news", chunks, "test", now)
    assert done.deferred >= 5 and done.next_retry and not done.complete
    assert state_of(settings.home, "news") == "sending", "deferred and pending recipients: not sent"
    with Receiver(record=True, port=port) as rx:  # the relay is back
        counts = asyncio.run(send_chunk(settings, SPEC, chunks[0].path))
    assert counts["delivered"] == 30, "none waits for the deferred back-off"
    assert sorted(r for m in rx.received for r in m.recipients) == sorted(emails)
    assert finish_send(settings.home, "news", chunks, "test", now).complete
    assert state_of(settings.home, "news") == "sent"


def test_a_deferral_logged_before_ledgers_said_unsent_still_waits_for_its_retry(settings, tmp_path):
    chunk = write_chunk(tmp_path / "c.parquet", ["a@example.com"])
    state = {1: RecipientState("deferred", 1, "2999-01-01T00:00:00+00:00", None)}
    todo, _, _, counts = select_recipients(pl.read_parquet(chunk), state, settings, False, datetime.now(UTC))
    assert todo == [] and counts["skipped"] == 1


def test_a_link_index_means_one_url_across_variants_with_their_own_templates(settings, tmp_path):
    from mailflow.tasks.send.chunk import composer_for, write_link_table

    folder = tmp_path / "templates"
    folder.mkdir()
    for name, url in (("ta", "https://example.com/a"), ("tb", "https://example.com/b")):
        (folder / f"{name}.html.j2").write_text(f'<html><body><a href="{url}">go</a></body></html>')
    spec = replace(SPEC, template="ta", variants=(Variant("A"), Variant("B", template="tb")))
    ours = replace(settings, templates_dir=folder)
    table = json.loads(write_link_table(ours, spec).read_text())["links"]
    assert table == ["https://example.com/a", "https://example.com/b"]
    composed = composer_for(ours, spec, "B").compose({"subscriber_id": 1, "email": "b@example.com", "variant": "B"})
    assert b"/1\"" in composed.data.replace(b"=\r\n", b"") and b"/0\"" not in composed.data.replace(b"=\r\n", b"")
