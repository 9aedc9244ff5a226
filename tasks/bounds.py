"""What one input file may cost: columns, record length, quarantined text; gzip inflated in bounded steps."""

from __future__ import annotations

import codecs
import hashlib
import io
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from mailflow.errors import MailflowError

MAX_COLUMNS = 1_000            # a subscriber export has tens; 145k made header handling cost minutes
MAX_RECORD_BYTES = 1 << 20     # one row (CSV record, NDJSON line, JSON element); longer is not a subscriber
RAW_LIMIT = 4_096              # characters of a rejected row's text kept in quarantine.raw
GZIP_STEP = 1 << 16            # compressed bytes fed to zlib at a time
QUOTE, NEWLINE = 0x22, 0x0A


def open_binary(path: Path) -> io.BufferedIOBase:
    """The file's bytes, decompressed if it is gzip (by content, not by name)."""
    try:
        fh = path.open("rb")
    except FileNotFoundError:
        raise MailflowError(f"{path}: no such file") from None
    except OSError as exc:
        raise MailflowError(f"{path}: cannot open ({exc.strerror})") from None
    if fh.peek(2)[:2] == b"\x1f\x8b":
        return io.BufferedReader(_Gunzip(fh), buffer_size=1 << 20)
    return fh


class _Gunzip(io.RawIOBase):
    """gzip decompression that never inflates more than it is asked for (a 200 KB file can hold
    200 MB of one byte) and notices a truncated stream (GzipFile.read(n) just stops short)."""

    def __init__(self, fh):
        self._fh = fh
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        view, filled = memoryview(target).cast("B"), 0
        while filled < len(view):
            if self._inflate.eof:  # end of a member: another may follow (multi-member gzip)
                rest = self._inflate.unused_data or self._fh.read(GZIP_STEP)
                if not rest:
                    break
                self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
            else:
                rest = self._inflate.unconsumed_tail or self._fh.read(GZIP_STEP)
            out = self._inflate.decompress(rest, len(view) - filled)  # at most what there is room for
            if not rest and not out and not self._inflate.eof:
                raise EOFError("the gzip stream ends early (the file is truncated)")
            view[filled:filled + len(out)] = out
            filled += len(out)
        return filled

    def close(self) -> None:
        self._fh.close()
        super().close()


def text_encoding(name: str | None) -> str | None:
    """`--encoding` checked: a character set Python knows (not a bytes-to-bytes codec like hex or rot13)."""
    if not name:
        return None
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise MailflowError(f"--encoding {name!r} is not an encoding Python knows") from None
    if not getattr(info, "_is_text_encoding", True):
        raise MailflowError(f"--encoding {name!r} is not a text encoding (use one such as utf-8, cp1252, latin-1 "
                            "or shift_jis)")
    return name


def check_width(path: Path, columns: int, what: str = "columns", hint: str = "") -> None:
    """Before any per-column work: header handling stays linear in a file's size."""
    if columns > MAX_COLUMNS:
        raise MailflowError(f"{path}: {columns:,} {what}, more than the limit of {MAX_COLUMNS:,}{hint}")


def shorten(text: str, size: int | None = None) -> str:
    """The row's text as quarantine.raw keeps it: at most RAW_LIMIT characters, then a marker."""
    if len(text) <= RAW_LIMIT:
        return text
    size = len(text.encode("utf-8", "surrogatepass")) if size is None else size
    return f"{text[:RAW_LIMIT]} …[truncated: {size:,} bytes]"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def too_long_reason(size: int) -> str:
    return f"line_too_long: {size:,} bytes, more than the limit of {MAX_RECORD_BYTES:,}"


@dataclass(frozen=True)
class LongRecord:
    """A record over the limit, seen once in passing: where it starts, how long, its hash and first characters."""

    line: int
    size: int          # bytes of text, without the line end
    newlines: int      # physical lines it spans, less one
    raw: str           # shortened
    sha256: str


class _Digest:
    """SHA-256 and the first characters of a text fed in pieces, with trailing CRs dropped as the parsers do."""

    def __init__(self):
        self.sha, self.head, self.size, self.crs = hashlib.sha256(), [], 0, 0
        self._decode = codecs.getincrementaldecoder("utf-8")("replace")
        self._kept = 0

    def feed(self, data: bytes, final: bool = False) -> None:
        text = self._decode.decode(data, final)
        body = text.rstrip("\r")
        if body:
            piece = "\r" * self.crs + body
            encoded = piece.encode("utf-8")
            self.sha.update(encoded)
            self.size += len(encoded)
            if self._kept <= RAW_LIMIT:
                self.head.append(piece[: RAW_LIMIT + 1 - self._kept])
                self._kept += len(self.head[-1])
            self.crs = len(text) - len(body)
        else:
            self.crs += len(text)

    def record(self, line: int, newlines: int) -> LongRecord:
        return LongRecord(line, self.size, newlines, shorten("".join(self.head), self.size), self.sha.hexdigest())


def skip_long_record(head: bytes, read: Callable[[], bytes], line: int, quoted: bool) -> tuple[LongRecord, bytes]:
    """Consume a record that starts `head` and is longer than the limit, in bounded pieces.

    Its end is found by the rule the CSV scanner uses (a newline after an even number of
    quotes; any newline when not `quoted`), so what follows is read exactly as if the whole
    record had been in memory. Returns the record and the bytes after it."""
    digest, parity, newlines, chunk = _Digest(), 0, 0, head
    while chunk:
        a = np.frombuffer(chunk, dtype=np.uint8)
        breaks = np.flatnonzero(a == NEWLINE)
        if quoted:
            quotes = np.flatnonzero(a == QUOTE)
            ends = breaks[((parity + np.searchsorted(quotes, breaks)) & 1) == 0]
            parity = (parity + quotes.size) & 1
        else:
            ends = breaks
        if ends.size:
            end = int(ends[0])
            digest.feed(chunk[:end], final=True)
            return digest.record(line, newlines + int(np.count_nonzero(breaks < end))), chunk[end + 1:]
        digest.feed(chunk)
        newlines += breaks.size
        chunk = read()
    digest.feed(b"", final=True)
    return digest.record(line, newlines), b""


def long_record(data: bytes, line: int) -> LongRecord:
    """The same summary of an over-long record already in memory."""
    digest = _Digest()
    digest.feed(data, final=True)
    return digest.record(line, data.count(b"\n"))


def representatives(keys: pl.Series, live: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Identical records (same bytes) screen identically: one stands for all.

    For the records at `live`: (index of each group's last copy, of its first, copies),
    in order of the last copy. A file of ten million copies of one row is then screened
    once per batch and quarantined once, with its count."""
    keys = keys if live.size == keys.len() else keys.gather(live)
    if keys.n_unique() == keys.len():
        return live, live, np.ones(live.size, dtype=np.int64)
    groups = (pl.DataFrame({"k": keys, "i": live}).group_by("k")
              .agg(last=pl.col("i").max(), first=pl.col("i").min(), copies=pl.len()).sort("last"))
    return groups["last"].to_numpy(), groups["first"].to_numpy(), groups["copies"].cast(pl.Int64).to_numpy()
