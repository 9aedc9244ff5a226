"""Header field values written directly: RFC 2047 encoded-words, RFC 5322 folding, no line over 78 octets.

A value starts after `Name: `, so every function takes the column it starts at. Short ASCII
values (the common case) come back as they are, after one length test. Longer ones are folded
at their spaces; a word that cannot be written as it is (non-ASCII, too long for a line, one the
parser would take for an encoded-word, leading white space the parser would drop) is written as
encoded-words, each at most 75 characters, cut between characters, never inside one. Python's
parser reads every value back as it was (tests/test_mime.py), except two things it does to
encoded display names, EmailMessage's own output included: it adds a space between two
encoded-words (RFC 2047 §6.2: none) and reads a run of spaces inside one as one space.
"""

from __future__ import annotations

import base64
import re

from mailflow.tasks.compose.message import HeaderInjection

MAX_LINE = 78  # RFC 5322 §2.1.1: SHOULD be at most 78 characters (998 MUST), not counting CRLF
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")  # tab is allowed; NEL and U+2028 break lines too
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")  # one space between
_ADDR_SPEC = re.compile(r"[^\s\x00-\x1f\x7f<>()\[\],;:\"@\\]+@[A-Za-z0-9.-]+")
_UTF8_ATOMS = r"[^\s\x00-\x1f\x7f-\x9f\u2028\u2029<>()\[\],;:\"@\\]+"  # RFC 6532: UTF-8 where ASCII atext was
_UTF8_ADDR_SPEC = re.compile(f"{_UTF8_ATOMS}@{_UTF8_ATOMS}")
_EW_OPEN, _EW_CLOSE = "=?utf-8?b?", "?="
_EW_WRAP = len(_EW_OPEN) + len(_EW_CLOSE)
_EW_BYTES = 45  # 45 bytes -> 60 base64 characters -> 72 with the wrapper; RFC 2047 §2 allows 75
_LEADING_WSP = (" ", "\t")  # a parser strips these from the start of a value


def check(name: str, value: str) -> str:
    if _CONTROL.search(value):
        raise HeaderInjection(f"header {name} contains a line break or control character")
    return value


def encode_text(value: str, column: int = 0) -> str:
    """An unstructured value (Subject) that starts at `column`."""
    if value.isascii():
        if len(value) + column <= MAX_LINE and "=?" not in value and value[:1] not in _LEADING_WSP:
            return value
    else:
        word = _one_word(value, column)
        if word is not None:
            return word
    words = value.split(" ")  # joined again with one space or a fold each: unfolding gives the value back
    lead = 0
    if value[:1] in _LEADING_WSP:  # encoded up to the first word, so that the parser keeps it
        while lead < len(words) - 1 and not words[lead]:
            lead += 1
        lead += 1
    items: list[tuple[bool, str]] = []
    for n, word in enumerate(words):
        encoded = n < lead or not word.isascii() or "=?" in word or len(word) > MAX_LINE - (column if n == 0 else 1)
        if encoded:  # white space between encoded-words is dropped: a run takes its spaces inside
            spaces = 0
            while spaces < len(items) and items[-1 - spaces] == (False, ""):
                spaces += 1
            if spaces < len(items) and items[-1 - spaces][0]:
                run = items[-1 - spaces][1]
                del items[len(items) - spaces - 1:]
                word = run + " " * (spaces + 1) + word
        items.append((encoded, word))
    return _fold(items, column)


def encode_mailbox(name: str | None, address: str, column: int = 0, utf8: bool = False) -> str:
    """`Display Name <addr@domain>` that starts at `column`: the name as atoms, quoted or encoded as it needs.

    `utf8`: the message goes with SMTPUTF8, so the address may be UTF-8 as it is (RFC 6532 §3.2).
    """
    if address.isascii():
        if not _ADDR_SPEC.fullmatch(address):
            raise HeaderInjection(f"address {address!r} is not a plain ASCII address")
    elif not utf8 or not _UTF8_ADDR_SPEC.fullmatch(address):
        raise HeaderInjection("a non-ASCII address can only go with SMTPUTF8" if not utf8
                              else "the address has characters no header may carry")
    if not name:
        return address
    tail = f"<{address}>"
    if name.isascii() and "=?" not in name:
        atoms = _ATOMS.fullmatch(name) is not None
        phrase = name if atoms else '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if column + len(phrase) + 1 + len(tail) <= MAX_LINE:
            return f"{phrase} {tail}"
        # Atoms fold between words; so does a quoted-string, and its white space survives unfolding
        words = phrase.split(" ")
        if len(words[0]) <= MAX_LINE - column and all(len(word) < MAX_LINE for word in words):
            return _fold([(False, word) for word in words] + [(False, tail)], column)
    word = _one_word(name, column)
    if word is not None:
        return f"{word} {tail}" if column + len(word) + 1 + len(tail) <= MAX_LINE else f"{word}\r\n {tail}"
    return _fold([(True, name), (False, tail)], column)


def _one_word(value: str, column: int) -> str | None:
    """The value as one encoded-word, when that fits in the line from `column` (a short name or subject)."""
    if len(value) > _EW_BYTES:
        return None
    data = value.encode("utf-8")
    if len(data) > _EW_BYTES or column + _EW_WRAP + (len(data) + 2) // 3 * 4 > MAX_LINE:
        return None
    return _EW_OPEN + base64.b64encode(data).decode("ascii") + _EW_CLOSE


def encode_list(items: list[str], column: int = 0) -> str:
    """`a, b`: a comma-separated structured value (List-Unsubscribe), folded after its commas."""
    value = ", ".join(items)
    if column + len(value) <= MAX_LINE:
        return value
    return _fold([(False, item + ",") for item in items[:-1]] + [(False, items[-1])], column)


def _fold(items: list[tuple[bool, str]], column: int) -> str:
    """Items separated by one space, folded to lines of MAX_LINE where they allow it.

    A plain item stays whole (a fold replaces the space before it, unless it is empty: a line of
    white space only is not allowed). An encoded item is the text of one run of encoded-words,
    cut to fill the lines; white space between encoded-words is not part of the text (RFC 2047 §6.2).
    """
    out: list[str] = []
    col = column
    for n, (encoded, text) in enumerate(items):
        if not encoded:
            if n:
                if text and col + 1 + len(text) > MAX_LINE:
                    out.append("\r\n ")
                    col = 1
                else:
                    out.append(" ")
                    col += 1
            out.append(text)
            col += len(text)
            continue
        data, start, after = text.encode("utf-8"), 0, n > 0
        while start < len(data):
            room = MAX_LINE - col - after - _EW_WRAP
            end = _char_end(data, start, min(_EW_BYTES, room // 4 * 3))
            if end == start:
                if after:  # not one character's room left on this line
                    out.append("\r\n ")
                    col, after = 1, False
                    continue
                end = _char_end(data, start, 4) if start + 4 <= len(data) else len(data)  # first of all: one character
            if after:
                out.append(" ")
                col += 1
            word = _EW_OPEN + base64.b64encode(data[start:end]).decode("ascii") + _EW_CLOSE
            out.append(word)
            col += len(word)
            start, after = end, True
    return "".join(out)


def _char_end(data: bytes, start: int, size: int) -> int:
    """The end of the longest run of whole UTF-8 characters from `start` within `size` bytes."""
    end = min(start + max(size, 0), len(data))
    while start < end < len(data) and (data[end] & 0xC0) == 0x80:  # never split a UTF-8 sequence
        end -= 1
    return end
