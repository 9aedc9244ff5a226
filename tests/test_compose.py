"""A composed message: bulk-sender headers, signed VERP, tracked links, CSS inlined, nothing leaking."""

import json
import re
from email import message_from_bytes
from email.policy import default

import pytest

from tasks.campaign import CampaignSpec
from tasks.compose import Composer
from tasks.render import CampaignTemplates
from tasks.send import composer_for, write_link_table
from tasks.smtp import Outcome
from tasks.tokens import TokenSigner

SPEC = CampaignSpec(name="Spring", campaign_id="spring", from_addr="Shop News <news@example.com>",
                    subject="Hi {{ subscriber.first_name }}", template="t", reply_to="help@example.com")
ROW = {"subscriber_id": 42, "email": "ann@example.com", "first_name": "Ann", "last_name": "Lee", "attributes": "{}"}
HTML = """<html><head><style>p { color: #c00 }</style></head><body>
<p>Hello {{ subscriber.first_name }}</p>
<a href="https://shop.example/sale?a=1&amp;b=2">Sale</a> <a href="https://shop.example/sale?a=1&amp;b=2">again</a>
<a href="mailto:help@example.com">mail</a> <a href="{{ unsubscribe_url }}">unsubscribe</a>
<a href="{{ view_url }}">view</a></body></html>"""


@pytest.fixture
def composer(tmp_path):
    (tmp_path / "t.html.j2").write_text(HTML)
    templates = CampaignTemplates("t", SPEC.subject, {"name": "Spring", "id": "spring"}, tmp_path,
                                  track_opens=True, track_clicks=True)
    return Composer(SPEC, templates, TokenSigner("k"), "https://t.example", "bounces.example.com")


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


def test_failed_render_is_an_outcome_not_an_exception(composer):
    outcome = composer.compose({**ROW, "first_name": None})
    assert isinstance(outcome, Outcome) and outcome.status == "failed" and "UndefinedError" in outcome.detail


def test_sending_needs_a_secret_and_writes_the_link_table(settings, home):
    from dataclasses import replace

    from mailflow.errors import MailflowError
    from tasks.campaign import load_campaign
    from mailflow import SAMPLES_DIR

    spec = load_campaign(SAMPLES_DIR / "campaign.yaml")
    with pytest.raises(MailflowError, match="MAILFLOW_TRACKING__SECRET"):
        composer_for(replace(settings, tracking=replace(settings.tracking, secret="")), spec)
    path = write_link_table(settings, spec, composer_for(settings, spec))
    assert json.loads(path.read_text())["links"] == ["https://example.com/news"]
