"""DKIM signer: every signature must verify with dkimpy, the reference implementation."""

from __future__ import annotations

import base64
import hashlib
import time
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from dkim.canonicalization import Relaxed
from dkim.util import parse_tag_value
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.compose.dkim import DEFAULT_HEADERS, ED25519_SHA256, RSA_SHA256, DkimSigner, dns_record, load_key, relaxed_body
from tests.support.dkimkeys import DOMAIN, HEADERS, SELECTOR, pem, signature_tags, verify

pytestmark = pytest.mark.usefixtures("ed25519_verification")


@pytest.fixture(scope="session")
def keys(rsa_private):
    return {
        "rsa": load_key(DOMAIN, SELECTOR, pem(rsa_private)),
        "ed25519": load_key(DOMAIN, SELECTOR, pem(ed25519.Ed25519PrivateKey.generate())),
    }


@pytest.fixture(scope="session")
def signers(keys):
    return {kind: DkimSigner(key) for kind, key in keys.items()}


def signature_lines(signed: bytes) -> list[bytes]:
    lines = signed.split(b"\r\n")
    end = 1
    while lines[end][:1] in (b" ", b"\t"):
        end += 1
    return lines[:end]


def dkimpy_body_hash(message: bytes, rsa_private) -> bytes:
    fields = dkim.DKIM(message).sign(
        SELECTOR.encode(), DOMAIN.encode(), pem(rsa_private, serialization.PrivateFormat.TraditionalOpenSSL),
        canonicalize=(b"relaxed", b"relaxed"), include_headers=[b"from"])
    return parse_tag_value(fields.split(b":", 1)[1].replace(b"\r\n", b""))[b"bh"]


def big_multipart() -> bytes:
    """~23 KB multipart/alternative as the renderer builds it."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = "Mailflow News <news@example.com>"
    msg["To"] = "Ünïcode Reader <reader@example.org>"
    msg["Subject"] = "Grüße aus Köln — 🎉 Sommerangebote für Sie und Ihre ganze Familie, nur diese Woche"
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain="example.com")
    msg["List-Unsubscribe"] = "<https://example.com/u/0123456789abcdef>, <mailto:unsub@example.com?subject=0123>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    para = "Lorem ipsum dolor sit amet,  consectetur\tadipiscing elit. Grüße, naïve café.   \n"
    msg.set_content(para * 50)
    row = '      <tr><td style="padding:8px 32px;">  ' + para + "      </td></tr>\n"
    msg.add_alternative("<html><body>\n  <table>\n" + row * 100 + "  </table>\n</body></html>\n", subtype="html")
    return msg.as_bytes()


KINDS = ["rsa", "ed25519"]

BODIES = {
    "plain": b"Hello,\r\nthis is a test.\r\n",
    "trailing whitespace": b"line one   \r\nline two\t\t\r\n \t \r\nend\r\n",
    "runs of spaces and tabs": b"a  b\t\tc \t d\r\n\t\tindented\r\n    four\r\n",
    "trailing empty lines": b"text\r\n\r\n\r\n\r\n",
    "trailing whitespace-only lines": b"text\r\n   \r\n\t\r\n\r\n",
    "empty": b"",
    "only empty lines": b"\r\n\r\n\r\n",
    "long lines": b"x" * 5000 + b"\r\n" + b"word  " * 2000 + b"\r\n",
    "no final CRLF": b"last line  \t",
    "bare CR inside a line": b"a\rb \r\r\n",
    "8-bit UTF-8": "Grüße  aus\tKöln\r\n".encode(),
    "leading empty lines": b"\r\n\r\nafter two empty lines\r\n",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("body", BODIES.values(), ids=BODIES.keys())
def test_bodies_verify_and_hash_as_dkimpy_does(signers, keys, rsa_private, kind, body):
    message = HEADERS + b"\r\n" + body
    signed = signers[kind].sign(message)
    assert verify(signed, keys[kind])
    sent = signed.split(b"\r\n", len(signature_lines(signed)))[-1]
    # the message goes out unchanged, except that a body missing its final CRLF gets one
    assert sent == (message if body == b"" or body.endswith(b"\r\n") else message + b"\r\n")
    assert signature_tags(signed)[b"bh"] == dkimpy_body_hash(sent, rsa_private)


@pytest.mark.parametrize("kind", KINDS)
def test_plain_text_message(signers, keys, kind):
    signed = signers[kind].sign(HEADERS + b"\r\nHello\r\n")
    assert signed.startswith(b"DKIM-Signature: ")
    assert verify(signed, keys[kind])
    tags = signature_tags(signed)
    assert tags[b"v"] == b"1"
    assert tags[b"a"] == keys[kind].algorithm.encode()
    assert tags[b"c"] == b"relaxed/relaxed"
    assert (tags[b"d"], tags[b"s"]) == (DOMAIN.encode(), SELECTOR.encode())
    assert tags[b"h"] == b"from:to:subject:date:message-id"
    assert abs(int(tags[b"t"]) - time.time()) < 60
    assert b"l" not in tags


@pytest.mark.parametrize("kind", KINDS)
def test_23kb_multipart_alternative(signers, keys, rsa_private, kind):
    message = big_multipart()
    assert 22_000 < len(message) < 24_000
    signed = signers[kind].sign(message)
    assert signed.endswith(message)
    assert verify(signed, keys[kind])
    tags = signature_tags(signed)
    assert tags[b"h"].replace(b" ", b"") == b":".join(h.lower().encode() for h in DEFAULT_HEADERS)
    assert tags[b"bh"] == dkimpy_body_hash(message, rsa_private)


def test_signature_header_is_folded(signers, keys):
    for kind in KINDS:
        for line in signature_lines(signers[kind].sign(big_multipart())):
            assert len(line) <= 78, line
    long_key = load_key("newsletters.marketing.example-company.co.uk", "s2026-11-mailflow-bulk-sending",
                        pem(ed25519.Ed25519PrivateKey.generate()))
    signed = DkimSigner(long_key).sign(big_multipart())
    assert all(len(line) <= 78 for line in signature_lines(signed))
    assert verify(signed, long_key)


HEADER_CASES = {
    "odd spacing and folding": b"Subject:   Hello\r\n  world \t\r\n",
    "tab after colon": b"Subject:\tHello\r\n\tthere\r\n",
    "folded right after the colon": b"Subject:\r\n Hello\r\n",
    "empty value": b"Subject:\r\n",
    "upper-case name": b"SUBJECT: Shouting\r\n",
    "encoded word": b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n =?utf-8?q?_und_mehr?=\r\n",
    "raw UTF-8 (SMTPUTF8)": "Subject: Grüße  aus Köln\r\n".encode(),
    "colon in value": b"Subject: Re: re:: a:b\r\n",
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("subject", HEADER_CASES.values(), ids=HEADER_CASES.keys())
def test_header_shapes(signers, keys, kind, subject):
    message = (b"From: a@example.com\r\nTo:   b@example.org  \r\n" + subject
               + b"Date: Sat, 28 Nov 2026 10:00:00 +0000\r\n\r\nHi\r\n")
    signed = signers[kind].sign(message)
    assert verify(signed, keys[kind])
    assert signature_tags(signed)[b"h"] == b"from:to:subject:date"


@pytest.mark.parametrize("kind", KINDS)
def test_relaxed_tolerates_refolding_of_signed_headers(signers, keys, kind):
    signed = signers[kind].sign(b"From: a@example.com\r\nSubject: Hello  big world\r\n\r\nHi  there\r\n")
    refolded = signed.replace(b"Subject: Hello  big world", b"Subject:Hello\r\n big\tworld")
    assert verify(refolded.replace(b"Hi  there", b"Hi there \t"), keys[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_only_present_headers_are_listed(signers, keys, kind):
    message = b"Subject: no To here\r\nFrom: a@example.com\r\nX-Other: x\r\n\r\nbody\r\n"
    signed = signers[kind].sign(message)
    assert signature_tags(signed)[b"h"] == b"from:subject"  # configured order, not message order
    assert verify(signed, keys[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_header_signs_the_last_one(signers, keys, kind):
    message = (b"From: a@example.com\r\nSubject: first\r\nTo: b@example.org\r\n"
               b"Subject: second\r\n\r\nbody\r\n")
    signed = signers[kind].sign(message)
    assert signature_tags(signed)[b"h"] == b"from:to:subject"
    assert verify(signed, keys[kind])
    # RFC 6376 §5.4.2: the bottom-most instance is the signed one
    assert verify(signed.replace(b"Subject: first", b"Subject: FIRST"), keys[kind])
    assert not verify(signed.replace(b"Subject: second", b"Subject: SECOND"), keys[kind])


@pytest.mark.parametrize("kind", KINDS)
def test_tampering_breaks_the_signature(signers, keys, kind):
    message = HEADERS + b"X-Mailer: mailflow\r\n\r\nPay 10 EUR to account 1234.\r\n"
    signed = signers[kind].sign(message)
    assert verify(signed, keys[kind])
    assert not verify(signed.replace(b"10 EUR", b"99 EUR"), keys[kind])
    assert not verify(signed + b"extra line\r\n", keys[kind])
    assert not verify(signed.replace(b"Subject: Monthly news", b"Subject: Monthly NEWS"), keys[kind])
    assert not verify(signed.replace(b"From: News <news@", b"From: News <evil@"), keys[kind])
    assert verify(signed.replace(b"X-Mailer: mailflow", b"X-Mailer: other"), keys[kind])  # not in h=


def test_signature_from_another_key_fails(keys):
    other = load_key(DOMAIN, SELECTOR, pem(ed25519.Ed25519PrivateKey.generate()))
    assert not verify(DkimSigner(other).sign(HEADERS + b"\r\nx\r\n"), keys["ed25519"])


def test_relaxed_body_matches_dkimpy_on_awkward_bodies():
    for body in BODIES.values():
        reference = body if body == b"" or body.endswith(b"\r\n") else body + b"\r\n"
        assert relaxed_body(body) == Relaxed.canonicalize_body(reference), body
    assert relaxed_body(b"") == b""  # RFC 6376 §3.4.4: relaxed keeps an empty body empty
    assert base64.b64encode(hashlib.sha256(relaxed_body(b"\r\n")).digest()) == \
        b"47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


BODY_TOKENS = st.sampled_from(["a", "b", "é", ".", " ", "  ", "\t", "\r\n", "\r"])
VALUE_TOKENS = st.sampled_from(["x", "Y", "ü", ":", ";", "=?", " ", "\t", "\r\n ", "\r\n\t"])


@settings(max_examples=150, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    body=st.lists(BODY_TOKENS, max_size=60).map("".join),
    subject=st.lists(VALUE_TOKENS, max_size=20).map("".join),
    to=st.none() | st.lists(VALUE_TOKENS, max_size=12).map("".join),
    second_subject=st.none() | st.lists(VALUE_TOKENS, max_size=8).map("".join),
)
@example(kind="rsa", body="", subject="", to=None, second_subject=None)
@example(kind="ed25519", body=" \t \r\n\r\n", subject="\r\n ", to="  ", second_subject="\t")
@example(kind="rsa", body="a \r", subject=" x ", to=None, second_subject=None)
def test_random_messages_always_verify(signers, keys, kind, body, subject, to, second_subject):
    lines = [b"From: a@example.com", b"Subject:" + subject.encode()]
    if to is not None:
        lines.append(b"To:" + to.encode())
    if second_subject is not None:
        lines.append(b"Subject:" + second_subject.encode())
    message = b"\r\n".join(lines) + b"\r\n\r\n" + body.encode()
    signed = signers[kind].sign(message)
    assert verify(signed, keys[kind])
    reference = message.split(b"\r\n\r\n", 1)[1]
    if reference and not reference.endswith(b"\r\n"):
        reference += b"\r\n"
    assert relaxed_body(body.encode()) == Relaxed.canonicalize_body(reference)


def test_load_key_reads_pkcs8_and_traditional_rsa(rsa_private):
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        key = load_key(DOMAIN, SELECTOR, pem(rsa_private, fmt))
        assert key.algorithm == RSA_SHA256
    assert load_key(DOMAIN, SELECTOR, pem(ed25519.Ed25519PrivateKey.generate())).algorithm == ED25519_SHA256
    key = load_key(DOMAIN, SELECTOR, pem(rsa_private).decode())  # a str PEM, as read from the environment
    assert key.algorithm == RSA_SHA256
    assert repr(key) == f"DkimKey(domain='{DOMAIN}', selector='{SELECTOR}', algorithm='rsa-sha256')"


def test_load_key_rejects_what_dkim_cannot_use(rsa_private):
    with pytest.raises(ValueError, match="not supported: use RSA"):
        load_key(DOMAIN, SELECTOR, pem(ec.generate_private_key(ec.SECP256R1())))
    encrypted = rsa_private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.BestAvailableEncryption(b"secret"))
    with pytest.raises(ValueError, match="encrypted"):
        load_key(DOMAIN, SELECTOR, encrypted)
    with pytest.raises(ValueError, match="not a PEM private key"):
        load_key(DOMAIN, SELECTOR, b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ValueError, match="selector"):
        load_key(DOMAIN, "bad selector;", pem(rsa_private))


def test_dns_records(keys, rsa_private):
    rsa_record = dns_record(keys["rsa"])
    assert rsa_record.startswith("v=DKIM1; k=rsa; p=")
    spki = serialization.load_der_public_key(base64.b64decode(rsa_record.split("p=")[1]))
    assert spki.public_numbers() == rsa_private.public_key().public_numbers()
    ed_record = dns_record(keys["ed25519"])
    assert ed_record.startswith("v=DKIM1; k=ed25519; p=")
    raw = keys["ed25519"].private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert base64.b64decode(ed_record.split("p=")[1]) == raw and len(raw) == 32


def test_signer_refuses_what_would_not_verify(keys):
    signer = DkimSigner(keys["rsa"])
    with pytest.raises(ValueError, match="bare LF"):
        signer.sign(b"From: a@example.com\r\n\r\nline\nother\r\n")
    with pytest.raises(ValueError, match="more than one From"):
        signer.sign(b"From: a@example.com\r\nFrom: b@example.com\r\n\r\nx\r\n")
    with pytest.raises(ValueError, match="no From"):
        signer.sign(b"Subject: x\r\n\r\nx\r\n")
    with pytest.raises(ValueError, match="malformed header"):
        signer.sign(b"From: a@example.com\r\nnot a header\r\n\r\nx\r\n")
    with pytest.raises(ValueError, match="From header field must be signed"):
        DkimSigner(keys["rsa"], headers=("To", "Subject"))


def test_headers_only_message(signers, keys):
    signed = signers["ed25519"].sign(b"From: a@example.com\r\nSubject: no body")
    assert signed.endswith(b"Subject: no body\r\n")
    assert verify(signed, keys["ed25519"])


def test_custom_header_list(keys):
    signer = DkimSigner(keys["ed25519"], headers=("from", "Reply-To", "FROM", "X-Campaign"))
    signed = signer.sign(b"From: a@example.com\r\nX-Campaign: c42\r\nReply-To: r@example.com\r\n\r\nx\r\n")
    assert signature_tags(signed)[b"h"] == b"from:reply-to:x-campaign"
    assert verify(signed, keys["ed25519"])
    assert not verify(signed.replace(b"c42", b"c43"), keys["ed25519"])
