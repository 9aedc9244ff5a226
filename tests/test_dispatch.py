"""Delivery through the dispatcher over real SMTP servers: relays, rotation, provider back-off,
send-time suppression and the fault matrix (every recipient ends in exactly one state)."""

import asyncio
from collections import Counter
from dataclasses import replace

import pytest

from mailflow.providers import DEFAULT_LIMITS
from mailflow.settings import Relay, load_settings
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.dispatch import Connections, Dispatcher
from mailflow.tasks.deliver.shaping import GlobalGate
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Fault, Receiver, free_port
from mailflow.tasks.files.suppress import SuppressionLog, write_snapshot
from mailflow.tasks.send.chunk import send_chunk
from tests.support.campaign import SPEC, final_records, ledger_records, mx_settings, settings_for, write_chunk
from tests.support.dnsstub import DnsStub
from tests.support.smtp import HELO, good

pytestmark = pytest.mark.integration


def send(settings, emails, tmp_path, **kwargs):
    chunk = write_chunk(tmp_path / "chunk.parquet", emails)
    return asyncio.run(asyncio.wait_for(send_chunk(settings, SPEC, chunk, **kwargs), 120))


def test_domains_stick_to_relays_by_weight(tmp_path):
    with Receiver(record=True) as a, Receiver(record=True) as b:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{a.port}?weight=1", f"127.0.0.1:{b.port}?weight=1",
                                choose="domain")
        emails = [f"u{i}@d{i % 20}.example" for i in range(80)]
        assert send(settings, emails, tmp_path)["delivered"] == 80
        domains_a = {r.rpartition("@")[2] for m in a.received for r in m.recipients}
        domains_b = {r.rpartition("@")[2] for m in b.received for r in m.recipients}
    assert domains_a and domains_b and not domains_a & domains_b  # each domain went to one relay only


def test_a_dead_relay_is_skipped_and_nothing_is_deferred(tmp_path):
    dead = free_port()
    with Receiver(record=True) as live:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{dead}", f"127.0.0.1:{live.port}")
        counts = send(settings, [f"u{i}@example.com" for i in range(40)], tmp_path)
        assert counts["delivered"] == 40 and "deferred" not in counts
        assert len({r for m in live.received for r in m.recipients}) == 40


def test_failing_over_logs_one_in_flight_mark_per_attempt_not_one_per_destination(tmp_path):
    with Receiver(record=True) as live:
        # The dead relay stays in rotation, so many recipients try it first and fail over.
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{free_port()}", f"127.0.0.1:{live.port}", relay_failures=100)
        counts = send(settings, [f"u{i}@example.com" for i in range(20)], tmp_path)
    assert counts["delivered"] == 20
    marks = Counter((r["subscriber_id"], r["attempt"]) for r in ledger_records(settings) if r["status"] == "in_flight")
    assert sorted(marks) == [(sid, 1) for sid in range(1, 21)]
    assert set(marks.values()) == {1}


@pytest.mark.parametrize("bad_relay", ["closing_server", "hangup_after_greeting_server", "silent_server"])
def test_a_relay_that_never_holds_a_session_is_failed_over_and_leaves_the_rotation(tmp_path, request, bad_relay):
    bad = request.getfixturevalue(bad_relay)
    with Receiver(record=True) as live:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{bad.port}", f"127.0.0.1:{live.port}", timeout=1.0)
        counts = send(settings, [f"u{i}@example.com" for i in range(30)], tmp_path)
    assert counts["delivered"] == 30
    assert bad.commands == []
    # Out after `relay_failures` failures; each other sender (one per connection of each relay) may
    # have picked it just before. Staying in rotation would mean about one recipient in two.
    senders = settings.pool("default").connections * 2
    assert 1 <= bad.sessions <= settings.send.relay_failures + senders - 1


def test_a_throttling_provider_is_suspended_while_others_go_on(tmp_path):
    throttle = Fault("RCPT", "421 4.7.0 Try again later, closing connection. (rate limited)")
    with Receiver(record=True, faults={"gmail.com": throttle}) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}",
                                shaping={"gmail": {"connections": 1, "backoff": 900}})
        # more held-back gmail recipients than the error budget (20): a suspension is no relay failure
        emails = [f"g{i}@gmail.com" for i in range(30)] + [f"u{i}@example.com" for i in range(10)]
        counts = send(settings, emails, tmp_path)
        delivered = {r for m in rx.received for r in m.recipients}
    assert counts == {"skipped": 0, "in_doubt": 0, "deferred": 30, "delivered": 10}
    assert delivered == set(emails[30:])
    records = final_records(settings)
    gmail = [records[sid] for sid in range(1, 31)]
    assert [r["smtp_code"] for r in gmail].count(421) == 1  # one reply, then the lane stopped asking
    suspended = [r for r in gmail if r["detail"].startswith("not sent: provider gmail suspended")]
    assert len(suspended) == 29 and {r["provider"] for r in gmail} == {"gmail"}
    assert len({r["retry_at"] for r in suspended}) == 1  # all due when the back-off ends
    assert {r["kind"] for r in gmail} == {"soft"} and {r["reason"] for r in suspended} == {"rate_limited"}


def test_straight_to_mx_a_421_greeting_suspends_the_providers_lane(tmp_path, throttling_greeting_server):
    zone = {"gmail.com": {"MX": ["5 mx.gmail.com."]}, "mx.gmail.com": {"A": ["127.0.0.1"]}}
    with DnsStub(zone) as dns:
        settings = mx_settings(tmp_path / "h", dns.port, throttling_greeting_server.port,
                               shaping={"gmail": {"connections": 1}})
        chunk = write_chunk(tmp_path / "c.parquet", [f"g{i}@gmail.com" for i in range(10)])
        lanes = {}
        counts = asyncio.run(send_chunk(settings, replace(SPEC, transport="mx"), chunk, lanes=lanes))
    assert lanes["gmail"].suspended()
    assert counts["deferred"] == 10
    assert {r["reason"] for r in final_records(settings).values()} == {"rate_limited"}
    assert throttling_greeting_server.sessions == 1, "one refused greeting, then the lane stopped connecting"


def test_a_recipient_waiting_for_its_rate_when_the_send_stops_never_reaches_the_wire(tmp_path):
    with Receiver(record=True) as rx:
        # One message per two seconds: the second connection's recipient waits for its rate.
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}", shaping={"other": {"rate": 0.5}})
        counts = send(settings, [f"u{i}@example.com" for i in range(10)], tmp_path,
                      interrupted=lambda: len(rx.received) >= 1)
        assert [r for m in rx.received for r in m.recipients] == ["u0@example.com"]
    assert counts["delivered"] == 1
    assert list(final_records(settings)) == [1], "the recipient that waited stays unlogged, for the next run"


def test_send_time_suppression_from_snapshot_and_log(tmp_path):
    import polars as pl

    with Receiver(record=True) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}")
        write_snapshot(settings.home, pl.DataFrame({"email": ["u1@example.com"], "cause": ["unsubscribed"]}))
        SuppressionLog(settings.home, "tracking").append("u2@example.com", "unsubscribe", "test")
        counts = send(settings, [f"u{i}@example.com" for i in range(5)], tmp_path)
        delivered = {r for m in rx.received for r in m.recipients}
    assert counts["suppressed"] == 2 and counts["delivered"] == 3
    assert not delivered & {"u1@example.com", "u2@example.com"}
    causes = {r["detail"] for r in final_records(settings).values() if r["status"] == "suppressed"}
    assert causes == {"suppressed since planning: unsubscribed", "suppressed since planning: unsubscribe"}


def test_a_hard_bounce_suppresses_the_address_for_later_sends(tmp_path):
    with Receiver(record=True, replies={"gone.example": USER_UNKNOWN}) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}")
        assert send(settings, ["a@gone.example", "b@example.com"], tmp_path)["bounced"] == 1
        bounced = final_records(settings)[1]
        assert (bounced["kind"], bounced["reason"], bounced["enhanced_status"]) == ("hard", "user_unknown", "5.1.1")
        # the same address in another chunk (e.g. another campaign running meanwhile) is not mailed again
        chunk = write_chunk(tmp_path / "other.parquet", ["a@gone.example"], chunk_id=1)
        counts = asyncio.run(send_chunk(settings, SPEC, chunk))
    assert counts["suppressed"] == 1


FAULTS = {
    "rcpt421@f.example": Fault("RCPT", "421 4.3.2 Service shutting down"),
    "rcpt450@f.example": Fault("RCPT", "450 4.2.1 Mailbox busy"),
    "rcpt451@f.example": Fault("RCPT", "451 4.3.0 Local error in processing"),
    "rcpt550@f.example": Fault("RCPT", "550 5.1.1 No such user"),
    "data552@f.example": Fault("DATA", "552 5.2.2 Mailbox full"),
    "data554@f.example": Fault("DATA", "554 5.7.1 Message rejected as spam"),
    "drop@f.example": Fault("DATA", drop=True),
    "stall@f.example": Fault("DATA", stall=True),
}
EXPECTED = {
    "rcpt421@f.example": "deferred", "rcpt450@f.example": "deferred", "rcpt451@f.example": "deferred",
    "rcpt550@f.example": "bounced", "data552@f.example": "bounced", "data554@f.example": "bounced",
    "drop@f.example": "deferred", "stall@f.example": "deferred",
}


def test_fault_matrix_every_recipient_ends_in_exactly_one_state(tmp_path):
    good = [f"ok{i}@f.example" for i in range(12)]
    emails = [*FAULTS, *good]
    with Receiver(record=True, faults=FAULTS) as rx:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{rx.port}", timeout=2.0)  # the stall times out
        counts = send(settings, emails, tmp_path)
        delivered = {r for m in rx.received for r in m.recipients}
    records = final_records(settings)
    by_email = {emails[sid - 1]: r for sid, r in records.items()}
    assert set(by_email) == set(emails)  # none lost
    assert {e: by_email[e]["status"] for e in FAULTS} == EXPECTED
    assert all(by_email[e]["status"] == "delivered" for e in good) and delivered >= set(good)
    assert sum(counts[s] for s in ("delivered", "deferred", "bounced")) == len(emails)
    assert by_email["rcpt550@f.example"]["kind"] == "hard"
    assert by_email["data552@f.example"]["kind"] == "soft"  # a full mailbox exists
    assert all(by_email[e]["retry_at"] for e, s in EXPECTED.items() if s == "deferred")


def test_transport_mx_delivers_per_domain_to_its_exchangers(tmp_path):
    port = free_port("127.0.0.2")
    zone = {"one.example": {"MX": ["10 mx.one.example."]}, "mx.one.example": {"A": ["127.0.0.2"]},
            "two.example": {"MX": ["10 mx.two.example."]}, "mx.two.example": {"A": ["127.0.0.3"]},
            "nullmx.example": {"MX": ["0 ."]}}
    with DnsStub(zone) as dns, Receiver(record=True, host="127.0.0.2", port=port) as one, \
            Receiver(record=True, host="127.0.0.3", port=port) as two:
        settings = load_settings(overrides={
            "home": str(tmp_path / "h"), "smtp": {"mx_port": port, "allow_private_mx": True},
            "dns": {"nameservers": ["127.0.0.1"], "port": dns.port},
            "tracking": {"base_url": "https://t.example"}}, environ={"MAILFLOW_TRACKING__SECRET": "test-secret"})
        emails = [f"a{i}@one.example" for i in range(5)] + [f"b{i}@two.example" for i in range(5)] + ["c@nullmx.example"]
        chunk = write_chunk(tmp_path / "c.parquet", emails)
        lanes = {}
        counts = asyncio.run(send_chunk(settings, replace(SPEC, transport="mx"), chunk, lanes=lanes))
        assert not [key for key in lanes if ":" in key]  # per-domain lanes are not kept after the chunk
        assert sorted(r for m in one.received for r in m.recipients) == emails[:5]
        assert sorted(r for m in two.received for r in m.recipients) == emails[5:10]
    assert counts["delivered"] == 10 and counts["bounced"] == 1
    null = final_records(settings)[11]
    assert (null["smtp_code"], null["enhanced_status"], null["kind"]) == (556, "5.1.10", "hard")


class FixedRoutes:
    """The same destinations, in the same order, for every domain."""

    def __init__(self, relays: list[Relay]):
        self.relays = relays

    async def candidates(self, domain: str) -> list[Relay]:
        return self.relays

    def failed(self, relay: Relay) -> None:
        pass

    def worked(self, relay: Relay) -> None:
        pass


def test_a_late_tls_error_never_fails_over(tls_breaking_server):
    def factory(relay, max_messages):
        return PipeliningConnection(relay, HELO, 3, max_messages)

    async def deliver(dispatcher):
        row = {"email": "reader0@example.com", "subscriber_id": 1}
        return [r async for r in dispatcher.run([row], lambda _: good(0), lambda _: None, lambda _: None)]

    with Receiver(record=True) as backup:
        relays = [Relay("127.0.0.1", tls_breaking_server.port, tls="opportunistic"),
                  Relay("127.0.0.1", backup.port, tls="opportunistic")]
        dispatcher = Dispatcher(FixedRoutes(relays), Connections(factory, 2), DEFAULT_LIMITS, GlobalGate(None, 1),
                                lane_per_domain=True)
        [result] = asyncio.run(asyncio.wait_for(deliver(dispatcher), 60))
    # The first server took the message before its TLS stream broke: it may deliver it, so no second copy.
    assert "STARTTLS" in tls_breaking_server.commands and len(tls_breaking_server.messages) == 1
    assert backup.received == []
    assert (result.outcome.status, result.outcome.smtp_code) == ("deferred", None)


def test_an_unknown_pool_stops_the_campaign_at_preflight(tmp_path):
    from mailflow.errors import MailflowError
    from mailflow.tasks.send.chunk import preflight

    settings = settings_for(tmp_path / "h", "127.0.0.1:25")
    chunk = write_chunk(tmp_path / "c.parquet", ["a@example.com"])
    with pytest.raises(MailflowError, match="no SMTP pool named 'bulk'"):
        preflight(settings, replace(SPEC, transport="bulk"), chunk, 1)
