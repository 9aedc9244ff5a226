"""A real MTA accepts mailflow's messages: a private Postfix delivers them intact, DKIM still valid."""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes
from email.policy import default

import pytest

from mailflow import SAMPLES_DIR
from mailflow.settings import Relay, load_settings
from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.dkim import DkimSigner
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.plan.campaign import CampaignSpec, load_campaign
from mailflow.tasks.send.chunk import composer_for
from tests.support.dkimkeys import DOMAIN as DKIM_DOMAIN
from tests.support.dkimkeys import SELECTOR, pem, verify
from tests.support.postfix_instance import DOMAIN, RELAY_DOMAIN, WAIT, PostfixInstance, poll, unavailable
from tests.support.reference_pool import deliver_all

pytestmark = pytest.mark.integration

SECRET = "postfix-test-secret"
CHECKED_HEADERS = ("Subject", "From", "To", "List-Unsubscribe", "List-Unsubscribe-Post", "Message-ID")
# A minified one-line template, as email builders export them: over 998 octets on one line.
MINIFIED_HTML = ("<html><body><p>Hallo {{ subscriber.first_name }}, grüße!</p>"
                 + "".join(f'<p>Item {i}: <a href="https://shop.example/p/{i}">Angebot {i}</a></p>' for i in range(40))
                 + '<p><a href="{{ unsubscribe_url }}">abbestellen</a></p></body></html>\n')
MINIFIED_TEXT = "Hallo {{ subscriber.first_name }},\nunsere Angebote: https://shop.example/p\n"
ROWS = [  # (template, row): the display names are what RFC 2047 encoded-words are for
    ("newsletter", {"first_name": "Zoë", "last_name": "Ångström", "email": "zoe@test.example"}),
    ("newsletter", {"first_name": "太郎", "last_name": "山田", "email": "taro@test.example"}),
    ("newsletter", {"first_name": "Ann", "last_name": None, "email": "ann@test.example",
                    "attributes": '{"plan": "pro", "country": "JP"}'}),
    ("minified", {"first_name": "Ünal", "last_name": "Çelik", "email": "unal@test.example"}),
    ("newsletter", {"first_name": "Bob", "last_name": "O'Neil", "email": "bob@test.example"}),
    ("minified", {"first_name": "Ève", "last_name": None, "email": "eve@test.example"}),
]
PIPELINED = 4  # the first four go through mailflow's own client, the rest through aiosmtplib


def lines_of(data: bytes) -> list[bytes]:
    return data.split(b"\r\n")


def as_sent(path) -> bytes:
    """A Maildir file with its local LF line ends back in SMTP's CRLF, as a verifier receives it."""
    return path.read_bytes().replace(b"\n", b"\r\n")


def leaf_parts(msg) -> list[tuple[str, str]]:
    return [(part.get_content_type(), part.get_content()) for part in msg.walk() if not part.is_multipart()]


@pytest.fixture(scope="module")
def mx():
    """What a relay forwards to: the recipient's MX, here a recording aiosmtpd."""
    with Receiver(record=True) as rx:
        yield rx


@pytest.fixture(scope="module")
def postfix(mx):
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    with PostfixInstance(relay_port=mx.port) as mta:
        yield mta


@pytest.fixture(scope="module")
def composers(tmp_path_factory, rsa_private):
    """The sample campaign as `mailflow send` composes it, and a campaign with a minified template."""
    home = tmp_path_factory.mktemp("home")
    settings = load_settings(overrides={
        "home": str(home), "tracking": {"base_url": "https://t.example"},
        "dkim": {"domain": DKIM_DOMAIN, "selector": SELECTOR},
    }, environ={"MAILFLOW_TRACKING__SECRET": SECRET, "MAILFLOW_DKIM__PRIVATE_KEY": pem(rsa_private).decode()})
    newsletter = composer_for(settings, load_campaign(SAMPLES_DIR / "campaign.yaml"))
    (home / "minified.html.j2").write_text(MINIFIED_HTML, encoding="utf-8")
    (home / "minified.txt.j2").write_text(MINIFIED_TEXT, encoding="utf-8")
    spec = CampaignSpec(name="Angebote", campaign_id="angebote", from_addr="Läden GmbH <news@example.com>",
                        subject="Angebote für {{ subscriber.first_name }}", template="minified")
    templates = CampaignTemplates("minified", spec.subject, {"name": spec.name, "id": spec.campaign_id}, home,
                                  track_opens=True, track_clicks=True)
    minified = Composer(spec, templates, TokenSigner(SECRET), settings.tracking.base_url,
                        settings.smtp.bounce_domain, newsletter.dkim)
    return {"newsletter": newsletter, "minified": minified, "helo": settings.smtp.helo}


@pytest.fixture(scope="module")
def envelopes(composers) -> list[tuple[dict, Envelope]]:
    out = []
    for subscriber_id, (template, row) in enumerate(ROWS, start=1):
        row = {"subscriber_id": subscriber_id, "attributes": "{}", **row}
        envelope = composers[template].compose(row)
        assert isinstance(envelope, Envelope), envelope
        out.append((row, envelope))
    return out


def deliver(relay: Relay, items, helo: str, factory=None) -> list:
    async def run():
        stream = deliver_all(items, relay, 2, helo, WAIT, connection_factory=factory)
        return [pair async for pair in stream]

    return asyncio.run(asyncio.wait_for(run(), WAIT))


@pytest.fixture(scope="module")
def sent(postfix, composers, envelopes):
    """Every envelope sent to Postfix's smtpd the way `mailflow send` does, with its outcome."""
    relay, helo = Relay("127.0.0.1", postfix.port), composers["helo"]
    items = [(i, envelope) for i, (_, envelope) in enumerate(envelopes)]
    outcomes = dict(deliver(relay, items[:PIPELINED], helo, PipeliningConnection))
    outcomes.update(deliver(relay, items[PIPELINED:], helo))  # aiosmtplib, the reference client
    return [(row, envelope, outcomes[i]) for i, (row, envelope) in enumerate(envelopes)]


def test_mailflow_writes_only_crlf_lines_of_at_most_998_octets(envelopes):
    # Postfix stores lines as they come, but its SMTP client breaks a line over 998 octets with
    # CRLF SPACE on the way to the next hop (and a bare LF is read as a line end): either
    # rewrites the body after signing and breaks DKIM. So mailflow must never produce them.
    assert max(map(len, MINIFIED_HTML.encode().split(b"\n"))) > 998, "the template must need the long-line path"
    for row, envelope in envelopes:
        data = envelope.data
        assert data.count(b"\n") == data.count(b"\r\n") == data.count(b"\r"), f"bare CR or LF for {row['subscriber_id']}"
        assert max(map(len, lines_of(data))) <= 998
        parts = leaf_parts(message_from_bytes(data, policy=default))
        assert [ctype for ctype, _ in parts] == ["text/plain", "text/html"]
    minified = message_from_bytes(envelopes[3][1].data, policy=default)
    assert minified.get_body(("html",))["Content-Transfer-Encoding"] == "quoted-printable"
    assert "Angebot 39</a>" in minified.get_body(("html",)).get_content(), "the long line survives, encoded"


def test_postfix_accepts_every_message_with_250(sent):
    assert [(o.status, o.smtp_code, o.enhanced_status) for _, _, o in sent] == [("delivered", 250, "2.0.0")] * len(ROWS)
    assert all(re.search(r"queued as [0-9A-F]+", o.detail) for _, _, o in sent), [o.detail for _, _, o in sent]


def test_the_maildir_holds_each_message_as_mailflow_wrote_it(postfix, sent):
    files = postfix.wait_for(len(ROWS))
    delivered = {message_from_bytes(as_sent(f), policy=default)["Message-ID"]: as_sent(f) for f in files}
    signer = TokenSigner(SECRET)
    for row, envelope, _ in sent:
        mine = message_from_bytes(envelope.data, policy=default)
        raw = delivered[mine["Message-ID"]]
        assert raw.endswith(envelope.data), "Postfix only prepends its trace headers; the rest is byte for byte"
        got = message_from_bytes(raw, policy=default)
        for name in CHECKED_HEADERS:
            assert got[name] == mine[name], name
        name = " ".join(filter(None, (row["first_name"], row["last_name"])))
        assert got["To"].addresses[0].display_name == name and got["To"].addresses[0].addr_spec == row["email"]
        assert got["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert re.fullmatch(r"<https://t\.example/u/[a-z0-9]+>, <mailto:unsubscribe\+[a-z0-9]+@bounces\.example\.com>",
                            got["List-Unsubscribe"])
        assert leaf_parts(got) == leaf_parts(mine)
        assert re.search(r'href="https://t\.example/c/[a-z0-9]+/\d+"', got.get_body(("html",)).get_content())
        # Postfix's own trace: the VERP return path it was given, and its Received line.
        token = re.fullmatch(r"<bounce\+([a-z0-9]+)@bounces\.example\.com>", got["Return-Path"]).group(1)
        assert signer.verify(token, "send").subscriber_id == row["subscriber_id"]
        assert got["Delivered-To"] == row["email"]
        (received,) = got.get_all("Received")
        assert re.match(rf"from mailer\.example\.com \(unknown \[127\.0\.0\.1\]\)\s+by mx\.{re.escape(DOMAIN)} "
                        rf"\(Postfix\) with ESMTP id [0-9A-F]+\s+for <{re.escape(row['email'])}>;", received)


def test_dkim_signatures_still_verify_after_postfix(postfix, composers, sent):
    key = composers["newsletter"].dkim.key
    for path in postfix.wait_for(len(ROWS)):
        raw = as_sent(path)
        assert raw.count(b"DKIM-Signature:") == 1
        assert verify(raw, key), f"DKIM fails after Postfix: {path.name}"


def test_a_relay_hop_keeps_the_signature_of_mailflow_mail_and_breaks_long_lines(postfix, mx, composers):
    # Through Postfix's SMTP client to the next hop, as a relay forwards to the recipient's MX.
    key = composers["newsletter"].dkim.key
    row = {"subscriber_id": 99, "email": f"far@{RELAY_DOMAIN}", "first_name": "Ünal", "last_name": None,
           "attributes": "{}"}
    ours = composers["minified"].compose(row)
    long_line = DkimSigner(key).sign(
        b"From: News <news@example.com>\r\nTo: far@" + RELAY_DOMAIN.encode() + b"\r\nSubject: one long line\r\n"
        b"Message-ID: <long-line@example.com>\r\n\r\n" + b"x" * 3000 + b"\r\n")
    foreign = Envelope("bounce@bounces.example.com", f"far@{RELAY_DOMAIN}", long_line)
    outcomes = deliver(Relay("127.0.0.1", postfix.port), [(0, ours), (1, foreign)], composers["helo"],
                       PipeliningConnection)
    assert sorted(o.status for _, o in outcomes) == ["delivered", "delivered"]
    poll(lambda: len(mx.received) >= 2)  # Postfix forwards from its queue, after the 250
    arrived = {message_from_bytes(r.data, policy=default)["Message-ID"]: r.data for r in mx.received}
    assert len(arrived) == 2, f"the next hop got {len(arrived)} of 2; Postfix log:\n{postfix.log()}"
    mine = arrived[message_from_bytes(ours.data, policy=default)["Message-ID"]]
    assert mine.endswith(ours.data) and verify(mine, key)
    broken = arrived["<long-line@example.com>"]
    assert max(map(len, lines_of(broken))) <= 998 and not verify(broken, key), "Postfix split the line, DKIM broke"
    assert "breaking line > 998 bytes" in postfix.log()
