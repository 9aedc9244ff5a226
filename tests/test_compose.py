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
from mailflow.tasks.send.chunk import composer_for, write_link_table
from tests.support.campaign import COMPOSE_SPEC, settings_for

ROW = {"subscriber_id": 42, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "attributes": "{}"}
HTML = """<html><head><style>p { color: #c00 }</style></head><body>
<p>Hello {{ subscriber.first_name }}</p>
<a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> <a href="https://shop.example/sale?a=1&amp;b=2">again</a>
<a href="mailto:help@example.com">mail</a> <a href="{{ unsubscribe_url }}">unsubscribe</a>
<a href="{{ view_url }}">view</a></body></html>"""


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
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
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
