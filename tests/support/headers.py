"""Header fields of a raw message as a strict RFC 5322 / RFC 2047 reader sees them."""

from __future__ import annotations

import re
from email.header import decode_header, make_header


def unfolded(data: bytes, name: bytes) -> bytes:
    """The raw value of header field `name` in a message, its CRLFs removed (RFC 5322 §2.2.3 unfolding)."""
    field = re.search(rb"(?mi)^" + name + rb": (.*(?:\r\n[ \t].*)*)\r\n", data).group(1)
    return field.replace(b"\r\n", b"")


def rfc2047_display_name(data: bytes, name: bytes = b"To") -> str:
    """The display name of a mailbox field as an RFC 2047 decoder reads it, which drops the white space
    between encoded-words; CPython's parser keeps a space there (tasks/compose/headers.py)."""
    value = unfolded(data, name).decode("ascii")
    if "<" not in value:
        return ""
    phrase = value.rsplit(" <", 1)[0]
    if phrase.startswith('"'):
        return re.sub(r"\\(.)", r"\1", phrase[1:-1])
    return str(make_header(decode_header(phrase)))
