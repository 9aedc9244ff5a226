"""The checks of a rendered message (RFC 8058 headers and their signature, links, size, images) and the preflight settings."""

from __future__ import annotations

import pytest

from mailflow.errors import MailflowError
from mailflow.settings import load_settings
from mailflow.settings_preflight import PreflightSettings
from mailflow.tasks.compose.dkim import DkimSigner, dns_record, load_key
from mailflow.tasks.preflight.checks import FAIL, Check, apply_settings
from mailflow.tasks.preflight.content import images_check, links_check, size_check, unsubscribe_check
from mailflow.tasks.preflight.dmarc import BadRecord, aligned, organisational_domain, parse_record
from mailflow.tasks.preflight.spamassassin import spam_check
from tests.support.preflight import pem_of

HEAD = (b"From: News <news@example.com>\r\nTo: r@example.org\r\nSubject: Hello\r\n"
        b"Date: Wed, 02 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n")
RFC8058 = (b"List-Unsubscribe: <https://t.example.com/u/tok>, <mailto:unsubscribe+tok@bounces.example.com>\r\n"
           b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
BODY = b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello there.\r\n"


@pytest.fixture(scope="module")
def key(rsa_private):
    return load_key("example.com", "mf1", pem_of(rsa_private))


def records(key) -> dict[str, str]:
    return {"mf1._domainkey.example.com": dns_record(key)}


def test_signed_rfc8058_headers_pass(key):
    message = DkimSigner(key).sign(HEAD + RFC8058 + BODY)
    assert unsubscribe_check(message, records(key)).status == "PASS"


def test_rfc8058_headers_outside_the_signature_fail(key):
    message = DkimSigner(key, headers=("From", "To", "Subject", "Date")).sign(HEAD + RFC8058 + BODY)
    found = unsubscribe_check(message, records(key))
    assert found.status == "FAIL" and "not covered by the DKIM signature" in found.detail
    assert found.fix == "add List-Unsubscribe and List-Unsubscribe-Post to the signed header fields"


def test_a_signature_that_does_not_verify_fails(key, rsa_private):
    message = DkimSigner(key).sign(HEAD + RFC8058 + BODY).replace(b"Hello there.", b"Hello t here.")
    assert unsubscribe_check(message, records(key)).status == "FAIL"


@pytest.mark.parametrize(("headers", "status", "says"), [
    (HEAD, "FAIL", "no List-Unsubscribe header"),
    (HEAD + RFC8058.replace(b"https://", b"http://"), "FAIL", "has no https URL"),
    (HEAD + RFC8058.split(b"\r\n")[0] + b"\r\n", "FAIL", "List-Unsubscribe=One-Click"),
    (HEAD + RFC8058, "WARN", "mailflow does not sign them"),
])
def test_unsigned_or_incomplete_rfc8058_headers(headers, status, says):
    found = unsubscribe_check(headers + BODY)
    assert found.status == status and says in found.detail


@pytest.mark.parametrize("href", ["javascript:alert(1)", "JavaScript:void(0)", "data:text/html,hi", "vbscript:x"])
def test_a_link_that_runs_script_fails(href):
    found = links_check(f'<p><a href="https://t.example.com/c/x/0">ok</a> <a href="{href}">bad</a></p>', [])
    assert found.status == FAIL and href[:10] in found.fix


def test_http_https_mailto_and_relative_links_pass_and_a_tracked_ftp_url_fails():
    html = '<a href="https://a.example/">a</a><a href="mailto:x@example.com">m</a><a href="#top">t</a><a href="page">p</a>'
    assert links_check(html, ["https://a.example/", "http://b.example/"]).status == "PASS"
    assert links_check(html, ["ftp://files.example/x"]).status == FAIL


def test_size_fails_over_the_gmail_clip_and_warns_near_it():
    prefs = PreflightSettings()
    assert size_check(b"x" * 120 * 1024, prefs).status == "FAIL"
    assert size_check(b"x" * 90 * 1024, prefs).status == "WARN"
    assert size_check(b"x" * 20 * 1024, prefs).status == "PASS"


def test_images_against_text():
    prefs, pixel = PreflightSettings(), '<img src="https://t.example.com/o/tok.gif" width="1" height="1">'
    assert images_check('<p><img src="https://a.example/banner.png"></p>' + pixel, prefs).status == "FAIL"
    few = "<p>Our sale starts today.</p>" + '<img src="https://a.example/1.png">' * 3
    assert images_check(few, prefs).status == "WARN"
    assert images_check("<p>" + "word " * 80 + "</p><img src='https://a.example/1.png'>" + pixel, prefs).status == "PASS"
    assert images_check("<p>" + "word " * 10 + "</p>" + pixel, prefs).detail.startswith("no images")


def test_a_missing_spamassassin_warns_and_never_crashes():
    found = spam_check(b"Subject: x\r\n\r\nhi\r\n", PreflightSettings(spamassassin="/nonexistent/spamassassin"))
    assert found.status == "WARN" and "not installed" in found.detail and "apt-get install spamassassin" in found.fix


def test_warn_only_turns_a_fail_into_a_warn_that_says_so():
    found = apply_settings([Check("spam", FAIL, "score 9"), Check("size", FAIL, "big")], PreflightSettings(warn_only=("spam",)))
    assert [(c.status, c.detail) for c in found] == [("WARN", "score 9 (FAIL reported as WARN: preflight.warn_only)"),
                                                     ("FAIL", "big")]


def test_preflight_settings_are_checked():
    prefs = load_settings(overrides={"preflight": {"skip": ["spam"], "source_ips": ["192.0.2.1"]}}, environ={}).preflight
    assert prefs.skip == ("spam",) and prefs.source_ips == ("192.0.2.1",) and prefs.spam_threshold == 5.0
    assert load_settings(environ={"MAILFLOW_PREFLIGHT__SPAM_THRESHOLD": "3.5"}).preflight.spam_threshold == 3.5
    with pytest.raises(MailflowError, match="unknown check"):
        load_settings(overrides={"preflight": {"warn_only": ["spf", "speling"]}}, environ={})
    with pytest.raises(MailflowError, match="preflight.source_ips"):
        load_settings(overrides={"preflight": {"source_ips": ["not-an-ip"]}}, environ={})


@pytest.mark.parametrize(("domain", "org"), [("example.com", "example.com"), ("a.b.example.com", "example.com"),
                                             ("news.shop.co.uk", "shop.co.uk"), ("mail.example.co.jp", "example.co.jp")])
def test_organisational_domain(domain, org):
    assert organisational_domain(domain) == org


def test_alignment_modes_and_record_parsing():
    assert aligned("example.com", "bounces.example.com", "r") and not aligned("example.com", "bounces.example.com", "s")
    assert not aligned("example.com", "example.net", "r")
    record = parse_record("example.com", "v=DMARC1; p=reject; sp=none; adkim=s")
    assert (record.policy, record.subdomain_policy, record.adkim, record.aspf) == ("reject", "none", "s", "r")
    with pytest.raises(BadRecord, match="p="):
        parse_record("example.com", "v=DMARC1; rua=mailto:x@example.com")
