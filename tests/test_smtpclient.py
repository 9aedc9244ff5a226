"""The pipelining SMTP client against real aiosmtpd servers, checked against aiosmtplib's outcomes."""

from __future__ import annotations

import asyncio

import pytest
from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import example, given
from hypothesis import strategies as st

from mailflow.settings import Relay
from mailflow.tasks.compose.message import Envelope, build_message
from mailflow.tasks.compose.mime import CrlfMessage
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.smtp import Outcome
from mailflow.tasks.deliver.wire import wire_data
from mailflow.tasks.demo.receiver import USER_UNKNOWN, Fault, Receiver
from tests.support.reference_pool import SmtpConnection, deliver_all
from tests.support.smtp import DELIVERED, HELO, SENDER, good, key, message, send_all

pytestmark = pytest.mark.integration

TROUBLE = ("deferred", None, None)  # connection trouble: no SMTP code


def relay(rx: Receiver, **options) -> Relay:
    return Relay("127.0.0.1", rx.port, **options)


def both(rx: Receiver, envelopes, timeout: float = 5.0, tls_context=None, **relay_options):
    """Outcomes of the pipelining client, then of aiosmtplib (the reference), on the same server."""
    mine = send_all(PipeliningConnection(relay(rx, **relay_options), HELO, timeout, tls_context=tls_context), envelopes)
    reference = send_all(SmtpConnection(relay(rx, **relay_options), HELO, timeout), envelopes)
    return mine, reference


BODIES = {
    "plain": message("plain"),
    "dots": message("dots", b".leading dot\r\n..two dots\r\n.\r\nafter a lone dot\r\n. \r\n..\r\n"),
    "starts-with-dot": b".Subject: odd\r\n\r\nbody\r\n",
    "no-final-crlf": message("no final line end", b"last line"),
    "8bit": message("8bit", "Grüße, €\r\n".encode()),
    "bare-line-ends": b"Subject: unix\n\nline\nother\rend\n.\n",
    "realistic": build_message(from_addr="News <news@example.com>", to_email="a@example.com", to_name="Ann",
                               subject="Issue 12", text=".starts with a dot\n" * 400,
                               html="<p>\n.dotted</p>\n" * 800),
}


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b".", b"..", b"a", b" ", "é".encode()])).map(b"".join))
@example(b".")
@example(b"a\r\n.\r\nb")
@example(b"a\n.\r\nsmuggled")
def test_wire_data_matches_aiosmtplib(data):
    size, wire = wire_data(data)
    text = normalize_message_line_endings(data)
    assert (size, wire) == (len(text), PERIOD_REGEX.sub(b"..", text) + b".\r\n")
    assert wire.count(b"\n") == wire.count(b"\r\n"), "no bare line ends reach the server"
    assert (b"\r\n" + wire).find(b"\r\n.\r\n") == len(wire) - 3, "only the final dot ends the message"


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
def test_messages_arrive_byte_identical(pipelining):
    envelopes = [Envelope(SENDER, f"{name}@example.com", data) for name, data in BODIES.items()]
    with Receiver(record=True, pipelining=pipelining) as rx:
        mine, reference = both(rx, envelopes)
    assert [key(o) for o in mine] == [DELIVERED] * len(envelopes)
    assert mine == reference
    got = [m.data for m in rx.received]
    assert len(got) == 2 * len(envelopes)
    assert got[:len(envelopes)] == got[len(envelopes):], "the same bytes as aiosmtplib delivers"
    expected = dict(BODIES, **{"no-final-crlf": BODIES["no-final-crlf"] + b"\r\n",
                               "bare-line-ends": b"Subject: unix\r\n\r\nline\r\nother\r\nend\r\n.\r\n"})
    assert got[:len(envelopes)] == list(expected.values()), "CRLF messages arrive unchanged, others normalised"
    assert [m.pipelined for m in rx.received] == [pipelining] * len(envelopes) + [False] * len(envelopes)


def test_mail_parameters_follow_the_extensions():
    ascii_body, eight_bit = message("ascii"), message("8bit", "Grüße\r\n".encode())
    with Receiver(record=True, pipelining=True) as rx:
        send_all(PipeliningConnection(relay(rx), HELO, 5.0), [good(0), Envelope(SENDER, "b@example.com", eight_bit)])
    assert [m.mail_options for m in rx.received] == [
        [f"SIZE={len(good(0).data)}"], [f"SIZE={len(eight_bit)}", "BODY=8BITMIME"]]
    assert ascii_body.isascii() and not eight_bit.isascii()


def test_old_server_gets_helo_and_no_parameters():
    with Receiver(record=True, pipelining=True, ehlo=False) as rx:
        mine, reference = both(rx, [good(0), good(1)])
    assert [key(o) for o in mine] == [DELIVERED, DELIVERED] and mine == reference
    assert [(m.mail_options, m.pipelined) for m in rx.received[:2]] == [([], False), ([], False)]


REFUSALS = {
    "rcpt-550": ({"replies": {"gone.example": USER_UNKNOWN}}, SENDER, "x@gone.example", ("bounced", 550, "5.1.1")),
    "rcpt-450": ({"replies": {"busy.example": "450 4.2.1 Mailbox busy"}}, SENDER, "x@busy.example",
                 ("deferred", 450, "4.2.1")),
    "rcpt-multiline": ({"replies": {"multi.example": "550-5.1.1 That account does not exist.\r\n550 5.1.1 Check it."}},
                       SENDER, "x@multi.example", ("bounced", 550, "5.1.1")),
    "mail-553": ({"faults": {"blocked@example.com": Fault("MAIL", "553 5.7.1 Sender not allowed")}},
                 "blocked@example.com", "x@example.com", ("deferred", 553, "5.7.1")),  # the sender refused: not the recipient's fault
    "mail-451": ({"faults": {"slow@example.com": Fault("MAIL", "451 4.3.0 Try again later")}},
                 "slow@example.com", "x@example.com", ("deferred", 451, "4.3.0")),
    "data-554": ({"faults": {"spam.example": Fault("DATA", "554 5.7.1 Looks like spam")}}, SENDER, "x@spam.example",
                 ("bounced", 554, "5.7.1")),
    "data-451": ({"faults": {"grey.example": Fault("DATA", "451 4.7.1 Greylisted")}}, SENDER, "x@grey.example",
                 ("deferred", 451, "4.7.1")),
    "size-552": ({"server_options": {"data_size_limit": 2000}}, SENDER, "x@example.com", ("bounced", 552, None)),
    "mail-421": ({"faults": {"last@example.com": Fault("MAIL", "421 4.7.0 Shutting down")}}, "last@example.com",
                 "x@example.com", ("deferred", 421, "4.7.0")),
    "rcpt-421": ({"faults": {"busy.example": Fault("RCPT", "421 4.7.0 Too many connections")}}, SENDER,
                 "x@busy.example", ("deferred", 421, "4.7.0")),
    "data-421": ({"faults": {"busy.example": Fault("DATA", "421 4.3.2 System shutting down")}}, SENDER,
                 "x@busy.example", ("deferred", 421, "4.3.2")),
}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_match_aiosmtplib_and_keep_the_connection(case, pipelining):
    options, sender, recipient, expected = REFUSALS[case]
    data = message("big", b"x" * 70 + b"\r\n") * 60 if case == "size-552" else message("refused")
    with Receiver(record=True, pipelining=pipelining, **options) as rx:
        mine, reference = both(rx, [good(0), Envelope(sender, recipient, data), good(1)])
    assert [key(o) for o in mine] == [DELIVERED, expected, DELIVERED]
    assert mine == reference
    assert [m.recipients for m in rx.received] == [["reader0@example.com"], ["reader1@example.com"]] * 2
    # After RSET the same connection carries on; after a 421 the server is gone and we reconnect.
    assert len({m.peer for m in rx.received[:2]}) == (2 if "421" in case else 1)


FAULTS = {
    "drop-after-rcpt": Fault("RCPT", drop=True),
    "drop-before-final-reply": Fault("DATA", drop=True),
    "stall-on-mail": Fault("MAIL", stall=True),
    "stall-on-rcpt": Fault("RCPT", stall=True),
    "stall-on-final-reply": Fault("DATA", stall=True),
    "garbage-reply": Fault("RCPT", "hello there"),
}


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelining", "one-by-one"])
@pytest.mark.parametrize("case", FAULTS)
def test_connection_trouble_defers_and_reconnects(case, pipelining):
    fault = FAULTS[case]
    sender, recipient = ("odd@example.com", "x@example.com") if fault.stage == "MAIL" else (SENDER, "x@odd.example")
    faults = {sender if fault.stage == "MAIL" else "odd.example": fault}
    with Receiver(record=True, pipelining=pipelining, faults=faults) as rx:
        mine, reference = both(rx, [good(0), Envelope(sender, recipient, message("trouble")), good(1)], timeout=0.5)
    assert [key(o) for o in mine] == [DELIVERED, TROUBLE, DELIVERED]
    assert "@" not in mine[1].detail
    if case == "garbage-reply":  # aiosmtplib reports code -1 and keeps the desynchronised connection
        assert key(reference[1]) == ("deferred", -1, None)
    else:
        assert [key(o) for o in reference] == [key(o) for o in mine]
    mine_received = rx.received[:2]
    assert [m.recipients for m in mine_received] == [["reader0@example.com"], ["reader1@example.com"]]
    assert mine_received[0].peer != mine_received[1].peer, "a new connection after the trouble"


def test_broken_server_that_accepts_data_after_a_refusal_gets_no_content():
    faults = {"liar.example": Fault("RCPT", "550 5.1.1 No such user", keep=True)}
    with Receiver(record=True, pipelining=True, faults=faults) as rx:
        mine, reference = both(rx, [good(0), Envelope(SENDER, "x@liar.example", message("secret")), good(1)])
    assert [key(o) for o in mine] == [DELIVERED, ("bounced", 550, "5.1.1"), DELIVERED] and mine == reference
    ours = rx.received[:3]
    assert [m.data for m in ours][1] == b"", "the pipelined DATA was ended with a lone dot"
    assert len({m.peer for m in ours}) == 1


def test_one_connection_carries_many_messages():
    envelopes = [good(n) if n % 10 else Envelope(SENDER, f"x{n}@gone.example", message("gone")) for n in range(60)]
    with Receiver(record=True, pipelining=True, replies={"gone.example": USER_UNKNOWN}) as rx:
        connection = PipeliningConnection(relay(rx), HELO, 5.0)
        outcomes = send_all(connection, envelopes)
        quits = rx.quits
    assert [o.status for o in outcomes] == ["bounced" if n % 10 == 0 else "delivered" for n in range(60)]
    assert len(rx.received) == 54 and len({m.peer for m in rx.received}) == 1
    assert all(m.pipelined for m in rx.received)
    assert quits == 1, "one QUIT, from close()"


def test_recycles_the_connection_after_max_messages():
    with Receiver(record=True, pipelining=True) as rx:
        outcomes = send_all(PipeliningConnection(relay(rx), HELO, 5.0, max_messages=3), [good(n) for n in range(7)])
        quits = rx.quits
    assert [key(o) for o in outcomes] == [DELIVERED] * 7
    peers = [m.peer for m in rx.received]
    assert [peers.count(p) for p in dict.fromkeys(peers)] == [3, 3, 1]
    assert quits == 3, "two recycles and the final close say QUIT"


def test_reopens_a_connection_the_server_closed_while_idle():
    async def run(connection):
        first = await connection.send(good(0))
        await asyncio.sleep(1.5)  # the server's idle timeout (0.5 s) closes the connection meanwhile
        second = await connection.send(good(1))
        await connection.close()
        return [first, second]

    with Receiver(record=True, pipelining=True, server_options={"timeout": 0.5}) as rx:
        mine = asyncio.run(asyncio.wait_for(run(PipeliningConnection(relay(rx), HELO, 5.0)), 30))
        reference = asyncio.run(asyncio.wait_for(run(SmtpConnection(relay(rx), HELO, 5.0)), 30))
    assert [key(o) for o in mine] == [DELIVERED, DELIVERED] and mine == reference
    assert rx.received[0].peer != rx.received[1].peer


def test_client_leaves_after_421_even_if_the_server_stays():
    # `replies` answer RCPT without closing: the client must take 421 as "going away" itself.
    with Receiver(record=True, pipelining=True, replies={"busy.example": "421 4.7.0 Try again later"}) as rx:
        mine, reference = both(rx, [good(0), Envelope(SENDER, "x@busy.example", message("busy")), good(1)])
    assert [key(o) for o in mine] == [DELIVERED, ("deferred", 421, "4.7.0"), DELIVERED] and mine == reference
    assert rx.received[0].peer != rx.received[1].peer and rx.received[2].peer != rx.received[3].peer


def test_unsolicited_421_between_messages_means_reconnect():
    # Postfix says "421 4.4.2 ... timeout exceeded" before closing an idle session: that line is
    # not the reply to our next MAIL, and must not defer the next recipient.
    faults = {"last.example": Fault("DATA", "250 2.0.0 Ok: queued\r\n421 4.4.2 Idle timeout exceeded")}
    with Receiver(record=True, pipelining=True, faults=faults) as rx:
        mine = send_all(PipeliningConnection(relay(rx), HELO, 5.0),
                        [Envelope(SENDER, "x@last.example", message("last")), good(1)])
    # aiosmtplib 5.1.3 reads the stray line as its MAIL reply and defers reader1 with 421 here.
    assert [key(o) for o in mine] == [DELIVERED, DELIVERED]
    assert rx.received[0].recipients == ["reader1@example.com"]


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # loopback: allowed on purpose
@pytest.mark.parametrize("exclude", [[], ["PLAIN"]], ids=["plain", "login"])
def test_authenticates_on_loopback(exclude):
    with Receiver(record=True, pipelining=True, auth={"mailer": "s3cret"},
                  server_options={"auth_exclude_mechanism": exclude}) as rx:
        mine, reference = both(rx, [good(0), good(1)], username="mailer", password="s3cret")
    assert [key(o) for o in mine] == [DELIVERED, DELIVERED] and mine == reference
    assert len(rx.received) == 4


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize("username,password,expected", [
    ("mailer", "wrong", ("deferred", 535, "5.7.8")),  # a wrong relay password must not bounce the list
    ("", "", ("deferred", 530, "5.7.0")),  # no AUTH: the server refuses MAIL, which is not the recipient's fault
])
def test_authentication_failures_match_aiosmtplib(username, password, expected):
    with Receiver(record=True, pipelining=True, auth={"mailer": "s3cret"}) as rx:
        mine, reference = both(rx, [good(0)], username=username, password=password)
    assert [key(o) for o in mine] == [expected] and mine == reference
    assert rx.received == []


def test_no_password_in_the_clear_to_a_remote_relay():
    # TEST-NET-1 is never routed: connecting would time out and defer instead of failing.
    connection = PipeliningConnection(Relay("192.0.2.1", 587, "mailer", "s3cret"), HELO, 0.5)
    [outcome] = send_all(connection, [good(0)])
    assert key(outcome) == ("failed", None, None) and "TLS" in outcome.detail


@pytest.mark.parametrize("sender,recipient", [
    (SENDER, "a@example.com\r\nRCPT TO:<evil@example.org>"),
    (SENDER, "a@example.com\n"),
    (SENDER, "a@example.com> SIZE=1"),
    (SENDER, "<a@example.com"),
    (SENDER, "jürgen@example.com"),
    (SENDER, "a@exämple.com"),
    ("news@example.com\rDATA", "a@example.com"),
    (SENDER, ""),
])
def test_unsafe_addresses_fail_without_sending(sender, recipient):
    with Receiver(record=True, pipelining=True) as rx:
        outcomes = send_all(PipeliningConnection(relay(rx), HELO, 5.0),
                            [Envelope(sender, recipient, message("x")), good(1)])
    assert [key(o) for o in outcomes] == [("failed", None, None), DELIVERED]
    assert "@" not in outcomes[0].detail
    assert [(m.sender, m.recipients) for m in rx.received] == [(SENDER, ["reader1@example.com"])]


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_non_ascii_recipient_goes_with_smtputf8_or_fails_alone(pipelining):
    utf8 = Envelope(SENDER, "josé@example.com", "To: josé@example.com\r\nSubject: x\r\n\r\nHola\r\n".encode(),
                    smtputf8=True)
    with Receiver(record=True, pipelining=pipelining, server_options={"enable_SMTPUTF8": True}) as rx:
        outcomes = send_all(PipeliningConnection(relay(rx), HELO, 5.0), [good(0), utf8, good(1)])
    assert [key(o) for o in outcomes] == [DELIVERED] * 3
    assert rx.received[1].recipients == ["josé@example.com"] and rx.received[1].data == utf8.data
    assert "SMTPUTF8" in rx.received[1].mail_options and "SMTPUTF8" not in rx.received[0].mail_options
    with Receiver(record=True, pipelining=pipelining, server_options={"enable_SMTPUTF8": False}) as rx:
        outcomes = send_all(PipeliningConnection(relay(rx), HELO, 5.0), [good(0), utf8, good(1)])
    assert [key(o) for o in outcomes] == [DELIVERED, ("failed", None, "5.6.7"), DELIVERED]
    assert "SMTPUTF8" in outcomes[1].detail and "@" not in outcomes[1].detail
    assert [m.recipients for m in rx.received] == [["reader0@example.com"], ["reader1@example.com"]]
    assert rx.quits == 1, "the session went on after the refusal"


def test_deliver_all_takes_a_connection_factory():
    made: list[PipeliningConnection] = []

    def factory(relay_: Relay, helo: str, timeout: float) -> PipeliningConnection:
        made.append(PipeliningConnection(relay_, helo, timeout))
        return made[-1]

    items = [(n, good(n)) for n in range(40)] + [("refused", Outcome("failed", detail="bad header")),
                                                 ("gone", Envelope(SENDER, "x@gone.example", message("gone")))]

    async def run(**kwargs) -> dict:
        return {k: o async for k, o in deliver_all(items, relay(rx), 4, HELO, 5.0, **kwargs)}

    with Receiver(record=True, pipelining=True, replies={"gone.example": USER_UNKNOWN}) as rx:
        fast = asyncio.run(asyncio.wait_for(run(connection_factory=factory), 60))
        default = asyncio.run(asyncio.wait_for(run(), 60))
    assert len(made) == 4
    for outcomes in (fast, default):
        assert [outcomes[n].status for n in range(40)] == ["delivered"] * 40
        assert key(outcomes["gone"]) == ("bounced", 550, "5.1.1") and outcomes["refused"].status == "failed"
    assert [m.pipelined for m in rx.received] == [True] * 40 + [False] * 40, "only the factory's connections pipeline"


# --- TLS, with the self-signed certificate of conftest.py ----------------------------------


def test_starttls_then_auth(server_tls, client_tls, trusted):
    with Receiver(record=True, pipelining=True, tls_context=server_tls, auth={"mailer": "s3cret"}) as rx:
        mine, reference = both(rx, [good(0), good(1)], tls_context=client_tls, tls="starttls",
                               username="mailer", password="s3cret")
    assert [key(o) for o in mine] == [DELIVERED, DELIVERED] and mine == reference
    assert [(m.tls, m.pipelined) for m in rx.received] == [(True, True)] * 2 + [(True, False)] * 2


def test_implicit_tls(server_tls, client_tls, trusted):
    with Receiver(record=True, pipelining=True, tls_context=server_tls, implicit_tls=True) as rx:
        mine, reference = both(rx, [good(0)], tls_context=client_tls, tls="implicit")
    assert [key(o) for o in mine] == [DELIVERED] and mine == reference
    assert [m.tls for m in rx.received] == [True, True]


def test_default_context_verifies_the_certificate(server_tls, certificate, monkeypatch):
    with Receiver(record=True, pipelining=True, tls_context=server_tls) as rx:
        [untrusted] = send_all(PipeliningConnection(relay(rx, tls="starttls"), HELO, 5.0), [good(0)])
        monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
        [trusted_] = send_all(PipeliningConnection(relay(rx, tls="starttls"), HELO, 5.0), [good(1)])
    assert key(untrusted) == TROUBLE and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
    assert key(trusted_) == DELIVERED
    assert [m.recipients for m in rx.received] == [["reader1@example.com"]]


def test_starttls_required_but_not_offered(client_tls):
    with Receiver(record=True, pipelining=True) as rx:
        mine, reference = both(rx, [good(0)], tls_context=client_tls, tls="starttls")
    assert [key(o) for o in mine] == [TROUBLE] == [key(o) for o in reference]
    assert rx.received == []


@given(st.lists(st.sampled_from([b"\r\n", b".", b"..", b"a", b" ", "é".encode()])).map(b"".join))
@example(b".\r\n")
@example(b"a\r\n.\r\n..\r\nb")
def test_composed_messages_skip_only_the_line_end_check(data):
    assert wire_data(CrlfMessage(data)) == wire_data(data)
