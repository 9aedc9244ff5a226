"""A composed message: bulk-sender headers, signed VERP, tracked links, CSS inlined, nothing leaking."""

import json
import re
from dataclasses import replace
from email import message_from_bytes
from email.policy import default

import pytest

from mailflow.tasks.compose.compose import Composer
from mailflow.tasks.compose.render import CampaignTemplates
from mailflow.tasks.compose.tokens import TokenSigner
from mailflow.tasks.deliver.smtp import Outcome
from mailflow.tasks.plan.audience import plan
from mailflow.tasks.plan.chunks import release_remainder
from mailflow.tasks.send.chunk import composer_for, write_link_table
from tests.support.campaign import COMPOSE_SPEC, SECRET_ENV, settings_for
from tests.support.planning import add_subscribers, campaign, chunk_frames

ROW = {"subscriber_id": 42, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "attributes": "{}"}
HTML = """<html><head><style>p { color: #c00 }</style></head><body>
<p>Hello {{ subscriber.first_name }}</p>
<a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> <a href="https://shop.example/sale?a=1&amp;b=2">again</a>
<a href="mailto:help@example.com">mail</a> <a href="{{ unsubscribe_url }}">unsubscribe</a>
<a href="{{ view_url }}">view</a></body></html>"""
AB_TEST = """variants:
  - {name: A, weight: 1}
  - {name: B, weight: 1, subject: "B"}
  - {name: C, weight: 1, subject: "C"}
ab: {test_fraction: 0.5}
"""


@pytest.fixture
def composer(tmp_path):
    (tmp_path / "t.html.j2").write_text(HTML)
    templates = CampaignTemplates("t", COMPOSE_SPEC.subject, {"name": "Spring", "id": "spring"}, tmp_path,
                                  track_opens=True, track_clicks=True)
    return Composer(COMPOSE_SPEC, templates, TokenSigner("k"), "https://t.example", "bounces.example.com")


def test_headers_of_a_bulk_sender(composer):
    envelope = composer.compose(ROW)
    msg = message_from_bytes(envelope.data, policy=default)
    signer = TokenSigner("k")
    token = re.fullmatch(r"bounce\+([a-z0-9]+)@bounces\.example\.com", envelope.sender).group(1)
    assert signer.verify(token, "send").subscriber_id == 42
    assert msg["X-Mailflow-Send"] == token
    assert envelope.recipient == "ann@example.com" and msg["To"] == "Ann Lee <ann@example.com>"
    assert msg["Subject"] == "Hi Ann" and msg["Reply-To"] == "help@example.com"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = re.fullmatch(r"<(https://[^>]+)>, <(mailto:[^>]+)>", msg["List-Unsubscribe"]).groups()
    assert signer.verify(https.rsplit("/", 1)[1], "unsubscribe").subscriber_id == 42
    assert mailto.startswith("mailto:unsubscribe+") and mailto.endswith("@bounces.example.com")
    assert msg["Feedback-ID"] == "spring:A:bulk:mailflow"
    assert msg["Message-ID"].endswith("@example.com>") and msg["Date"]
    assert "ann@example.com" not in msg["List-Unsubscribe"] + msg["Message-ID"] + envelope.sender


def test_the_message_id_starts_with_the_send_token_and_differs_for_every_message(composer):
    first, second = (message_from_bytes(composer.compose(ROW).data, policy=default) for _ in range(2))
    assert first["Message-ID"].startswith(f"<{first['X-Mailflow-Send']}.") and first["X-Mailflow-Send"] == second["X-Mailflow-Send"]
    assert first["Message-ID"] != second["Message-ID"], "a resend of the same recipient is another message"


def test_verp_local_parts_stay_within_64_characters(composer):
    envelope = composer.compose(ROW)
    mailto = re.search(r"<mailto:([^>]+)>", message_from_bytes(envelope.data, policy=default)["List-Unsubscribe"]).group(1)
    for address in (envelope.sender, mailto):
        local = address.rpartition("@")[0]
        assert re.fullmatch(r"(bounce|unsubscribe)\+[a-z2-7]{40}", local) and len(local) <= 64, local  # RFC 5321 4.5.3.1.1


def test_a_campaign_without_variants_signs_index_0_and_an_unknown_variant_is_refused(composer, tmp_path):
    from mailflow.errors import MailflowError

    token = composer.compose(ROW).sender.split("+")[1].split("@")[0]
    assert TokenSigner("k").verify(token, "send").variant == 0 and COMPOSE_SPEC.variant_names == ("A",)
    with pytest.raises(MailflowError, match="no variant 'B'"):
        Composer(COMPOSE_SPEC, composer.templates, TokenSigner("k"), "https://t.example", "bounces.example.com", variant="B")


def test_tokens_carry_the_index_of_their_chunks_variant_and_the_remainder_the_winners(con, home, tmp_path):
    add_subscribers(con, [f"u{i}@example.com" for i in range(600)])
    spec = campaign(tmp_path, extra=AB_TEST)
    plan(con, home, spec, 100)
    release_remainder(home, spec.campaign_id, "C")
    settings = settings_for(home, "127.0.0.1:25")  # composing only: no relay is asked
    signer = TokenSigner(SECRET_ENV["MAILFLOW_TRACKING__SECRET"])
    seen = set()
    for entry, frame in chunk_frames(home, spec.campaign_id):
        composer = composer_for(settings, spec, entry["variant"])
        for row in frame.head(3).to_dicts():
            envelope = composer.compose(row)
            send = signer.verify(envelope.sender.split("+")[1].split("@")[0], "send")
            unsubscribe = signer.verify(re.search(r"/u/([a-z2-7]{40})>", envelope.data.decode()).group(1), "unsubscribe")
            assert send.variant == unsubscribe.variant == spec.variant_names.index(entry["variant"])
            seen.add((row["variant"], send.variant))
    assert seen == {("A", 0), ("B", 1), ("C", 2), ("remainder", 2)}


def test_links_are_signed_click_urls_and_the_table_lists_them(composer):
    html = message_from_bytes(composer.compose(ROW).data, policy=default).get_body(("html",)).get_content()
    clicks = re.findall(r'href="(https://t\.example/c/[a-z0-9]+/\d+)"', html)
    assert [c.rsplit("/", 1)[1] for c in clicks] == ["0", "0"], "one table entry per distinct URL"
    assert composer.templates.links.urls == ["https://shop.example/sale?a=1&b=2"]
    assert 'href="mailto:help@example.com"' in html, "mailto links are not tracked"
    assert re.search(r'<img src="https://t\.example/o/[a-z0-9]+\.gif"', html)
    assert 'style="color: #c00' in html and "<style>" not in html, "CSS inlined"
    text = message_from_bytes(composer.compose(ROW).data, policy=default).get_body(("plain",)).get_content()
    assert "Hello Ann" in text and "Sale (https://shop.example/sale?a=1&b=2)" in text, "text derived from the HTML"


@pytest.fixture(scope="module")
def dkim_key():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from mailflow.tasks.compose.dkim import load_key

    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return load_key("example.com", "mf1", private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


@pytest.mark.parametrize("first_name", ["A" * 4000, "Jürgen " * 500 + "Müller", "日本語" * 700, "Ann " * 300 + "=?x?="])
def test_long_names_and_subjects_fold_to_short_lines_that_verify_and_read_back(tmp_path, dkim_key, first_name):
    import dkim

    from mailflow.tasks.compose.dkim import DkimSigner, dns_record
    from tests.support.headers import rfc2047_display_name

    (tmp_path / "t.html.j2").write_text(HTML)
    spec = replace(COMPOSE_SPEC, from_addr=f"{'Shop News ' * 20}<news@example.com>",
                   subject="Spring sale for {{ subscriber.first_name }}: " + "everything must go " * 60)
    templates = CampaignTemplates("t", spec.subject, {"name": "Spring", "id": "spring"}, tmp_path)
    composer = Composer(spec, templates, TokenSigner("k"), "https://t.example", "bounces.example.com",
                        DkimSigner(dkim_key))
    data = composer.compose({**ROW, "first_name": first_name}).data
    head = data.split(b"\r\n\r\n", 1)[0]
    long = [line for line in head.split(b"\r\n") if len(line) > 78]
    # Only a line holding one whole List-Unsubscribe URI may pass 78 (the SHOULD limit): a URI does not fold
    assert all(re.fullmatch(rb"(List-Unsubscribe:)? <[^ ]{1,200}>,?", line) for line in long), long
    record = dns_record(dkim_key).encode()
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record if name == b"mf1._domainkey.example.com." else None)
    msg = message_from_bytes(data, policy=default)
    assert msg["Subject"] == " ".join(f"Spring sale for {first_name}: {'everything must go ' * 60}".split())
    assert rfc2047_display_name(data) == f"{first_name} Lee"
    assert rfc2047_display_name(data, b"From") == ("Shop News " * 20).strip()
    assert msg["To"].addresses[0].addr_spec == "ann@example.com" and msg["From"].addresses[0].addr_spec == "news@example.com"


def test_a_non_ascii_recipient_gets_a_utf8_header_that_verifies(tmp_path, dkim_key):
    import dkim

    from mailflow.tasks.compose.dkim import DkimSigner, dns_record

    (tmp_path / "t.html.j2").write_text(HTML)
    templates = CampaignTemplates("t", COMPOSE_SPEC.subject, {"name": "Spring", "id": "spring"}, tmp_path)
    composer = Composer(COMPOSE_SPEC, templates, TokenSigner("k"), "https://t.example", "bounces.example.com", DkimSigner(dkim_key))
    envelope = composer.compose({**ROW, "email": "josé@example.com", "first_name": "José"})
    assert envelope.smtputf8 and envelope.recipient == "josé@example.com"
    assert "To: =?utf-8?b?Sm9zw6kgTGVl?= <josé@example.com>\r\n".encode() in envelope.data  # RFC 6532 §3.2
    record = dns_record(dkim_key).encode()
    assert dkim.verify(envelope.data, dnsfunc=lambda name, timeout=5: record)
    assert not composer.compose(ROW).smtputf8


def test_failed_render_is_an_outcome_not_an_exception(composer):
    outcome = composer.compose({**ROW, "first_name": None})
    assert isinstance(outcome, Outcome) and outcome.status == "failed" and "UndefinedError" in outcome.detail


def test_sending_needs_a_secret_and_writes_the_link_table(home):
    from mailflow import SAMPLES_DIR
    from mailflow.errors import MailflowError
    from mailflow.tasks.plan.campaign import load_campaign

    settings = settings_for(home, "127.0.0.1:25")  # composing only: no relay is asked
    spec = load_campaign(SAMPLES_DIR / "campaign.yaml")
    with pytest.raises(MailflowError, match="MAILFLOW_TRACKING__SECRET"):
        composer_for(replace(settings, tracking=replace(settings.tracking, secret="")), spec)
    path = write_link_table(settings, spec)
    assert json.loads(path.read_text())["links"] == ["https://example.com/news"]
