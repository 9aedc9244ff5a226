"""The direct MIME writer reads back like the email package's own messages."""

import base64
import re
from email import message_from_bytes
from email.policy import default

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailflow.tasks.compose.headers import encode_mailbox, encode_text
from mailflow.tasks.compose.message import HeaderInjection, build_message
from mailflow.tasks.compose.mime import Multipart, _short_lines, build_mime
from tests.support.headers import rfc2047_display_name

TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=300)


def parse(data: bytes):
    return message_from_bytes(data, policy=default)


def content(msg, kind):
    return msg.get_body((kind,)).get_content().replace("\r\n", "\n")


def lf(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if text.endswith("\n") else text + "\n"


@given(subject=st.text(max_size=120).filter(lambda s: not any(ord(c) < 32 or 127 <= ord(c) <= 159 or c in "\u2028\u2029" for c in s) and s.strip() == s),
       name=st.text(max_size=40).filter(lambda s: not any(ord(c) < 32 or 127 <= ord(c) <= 159 or c in "\u2028\u2029" for c in s) and s.strip() == s),
       text=TEXT, html=TEXT)
@example(subject="Ünïcode — sale " * 10, name='Ann "The Boss" O\'Neil', text="x" * 3000, html="<p>" + "y" * 2000 + "</p>")
@example(subject="", name="", text="", html="")
@example(subject="", name='"¡', text="", html="")
@settings(max_examples=200, deadline=None)
def test_direct_writer_parses_back_like_the_reference(subject, name, text, html):
    headers = [("From", encode_mailbox("Shop", "news@example.com")), ("To", encode_mailbox(name, "ann@example.com")),
               ("Subject", encode_text(subject))]
    ours = parse(build_mime(headers, text, html))
    reference = parse(build_message(from_addr="Shop <news@example.com>", to_email="ann@example.com", to_name=name or None,
                                    subject=subject, html=html, text=text))
    assert ours["Subject"] == reference["Subject"] == subject
    # CPython's modern parser adds a space between adjacent encoded-words in a display name
    # (it does so for EmailMessage's own output too), so the name is checked with the
    # RFC 2047 decoder instead.
    assert rfc2047_display_name(build_mime(headers, text, html)) == name
    assert ours["To"].addresses[0].addr_spec == "ann@example.com"
    assert [p.get_content_type() for p in ours.iter_parts()] == [p.get_content_type() for p in reference.iter_parts()]
    assert content(ours, "plain") == lf(text) and content(ours, "html") == lf(html)
    raw = build_mime(headers, text, html)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "RFC 5322 line limit"
    assert b"\n" not in raw.replace(b"\r\n", b""), "CRLF line endings only"


def test_text_only_message_and_quoted_printable_fallback():
    msg = parse(build_mime([("Subject", "x")], "only text\n", None))
    assert msg.get_content_type() == "text/plain" and lf(msg.get_content()) == "only text\n"
    long = parse(build_mime([("Subject", "x")], "t", "z" * 5000, allow_8bit=True))
    assert long.get_body(("html",))["Content-Transfer-Encoding"] == "quoted-printable"
    assert content(long, "html") == "z" * 5000 + "\n"
    eight = parse(build_mime([("Subject", "x")], "héllo", None, allow_8bit=False))
    assert eight["Content-Transfer-Encoding"] == "quoted-printable" and lf(eight.get_content()) == "héllo\n"


@pytest.mark.parametrize("name,address", [("Eve\r\nBcc: x@y.z", "a@b.c"), ("Eve\x85Bcc: x@y.z", "a@b.c"), ("Eve\u2028x", "a@b.c"), ("Eve", "a@b.c\r\nBcc: x@y.z"), ("", "üser@example.com"),
                                          ("", "a b@example.com"), ("", "<a@b.c>")])
def test_mailbox_refuses_injection_and_non_ascii_addresses(name, address):
    from mailflow.tasks.compose.headers import check

    with pytest.raises(HeaderInjection):
        encode_mailbox(check("To", name), check("To", address))


_HEADER_SAFE = st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp"))
HEADER_VALUES = st.one_of(
    st.text(_HEADER_SAFE, max_size=400),  # any Unicode
    st.text(st.sampled_from("abcXYZ019.-'\"()<>,;:@=?_ "), max_size=600),  # ASCII with spaces and specials
    st.text(st.sampled_from("ab= "), max_size=120).map(lambda s: s.replace("= ", "=?")),  # encoded-word look-alikes
    st.builds(lambda word, n: " ".join([word] * n), st.text(st.sampled_from("aé日"), min_size=1, max_size=90),
              st.integers(1, 60)),  # long words, repeated
    st.text(st.sampled_from("x日"), min_size=70, max_size=4000),  # no space at all
)
LONG_CASES = ["x" * 4000, "Spring sale: " + "everything must go " * 60, "日本語の件名" * 300, "é" * 1210,
              "Ünïcode — sale " * 10, " leading", "  two leading", "trailing ", "a  b", "=?utf-8?q?x?=",
              "a=?x?=b and =?", " ", "", "x" * 77, "x" * 78, "x" * 69, "x" * 70, "\tab"]


def assert_folded(head: bytes) -> None:
    lines = head.split(b"\r\n")
    assert all(len(line) <= 78 for line in lines), max(lines, key=len)
    assert all(line.strip(b" \t") for line in lines[1:] if line), "no line of white space only"
    assert all(len(word) <= 75 for word in re.findall(rb"=\?utf-8\?b\?[^?]*\?=", head)), "RFC 2047 §2"


@settings(max_examples=400, deadline=None)
@given(value=HEADER_VALUES)
@example(value="x" * 4000)
def test_a_subject_of_any_length_folds_within_78_octets_and_reads_back_the_same(value):
    for case in [value, *LONG_CASES] if value == "x" * 4000 else [value]:
        head = f"Subject: {encode_text(case, len('Subject: '))}\r\n".encode()
        assert_folded(head)
        assert parse(head + b"From: a@example.com\r\n\r\nbody\r\n")["Subject"] == case
        for raw in re.findall(rb"=\?utf-8\?b\?([^?]*)\?=", head):  # each word decodes alone: whole characters
            base64.b64decode(raw).decode("utf-8")


@settings(max_examples=400, deadline=None)
@given(name=HEADER_VALUES.filter(lambda name: "\t" not in name))
@example(name="A" * 4000)
@example(name="Ann " * 1000)
@example(name='Ann "The Boss" O\'Neil, ' * 100)
@example(name="Jürgen Müller-Lüdenscheidt " * 40)
@example(name=" Ann")
@example(name="Ann  Lee")
def test_a_display_name_of_any_length_folds_within_78_octets_and_reads_back_the_same(name):
    address = "ann.lee@example.com"
    head = f"To: {encode_mailbox(name, address, len('To: '))}\r\n".encode()
    assert_folded(head)
    msg = parse(head + b"From: a@example.com\r\n\r\nbody\r\n")
    assert msg["To"].addresses[0].addr_spec == address
    if name:
        assert rfc2047_display_name(head) == name
    words = re.findall(rb"=\?utf-8\?b\?", head)
    if len(words) <= 1 and "  " not in name:  # CPython's reading of encoded names: see tasks/compose/headers.py
        assert msg["To"].addresses[0].display_name == name


def test_a_campaign_boundary_never_ends_a_part_early():
    writer = Multipart()
    text = f"quoting a message:\n--{writer.boundary}\nContent-Type: text/html\n\n<p>forged</p>\n"
    head, body = writer.write(text, "<p>real</p>")
    assert writer.boundary.encode() not in head, "a fresh boundary for this message"
    msg = parse(b"From: a@example.com\r\n" + head + b"\r\n" + body)
    assert content(msg, "plain") == text and content(msg, "html") == "<p>real</p>\n"
    assert writer.write("plain", "<p>x</p>")[0] == writer.write("other", "<p>y</p>")[0], "shared otherwise"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 2500), max_size=12))
@example([998])
@example([999])
@example([0, 997, 998, 999, 1000, 1001])
def test_short_lines_agrees_with_splitting(lengths):
    data = b"".join(b"x" * n + b"\r\n" for n in lengths)
    assert _short_lines(data) == (max(lengths, default=0) <= 998)

