"""IMAP intake: fetch, commit and move 10,000 bounce messages from a private local Dovecot (target < 30 s)."""

from __future__ import annotations

import ssl
import tempfile
import time
from pathlib import Path

from bench import MissingTool, log, row
from mailflow.tasks.bounces.imap import fetch_new
from tests.support.dovecot import PASSWORD, DovecotInstance, unavailable

MESSAGES = 10_000
TARGET = 30.0  # seconds, issue #12


def bounce(n: int) -> bytes:
    """A Postfix-shaped DSN of about 2.5 KB: the prose part, the status part, the returned headers."""
    return (f"From: MAILER-DAEMON@mx.test.example (Mail Delivery System)\r\nTo: bounce+t{n:08d}@bounces.example.com\r\n"
            f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-{n}@mx.test.example>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\n" + "This is the mail system at host mx.test.example.\r\n" * 20
            + f"\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.test.example\r\n\r\n"
            f"Final-Recipient: rfc822; user{n}@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
            f"Diagnostic-Code: smtp; 550 5.1.1 <user{n}@example.org>: Recipient address rejected\r\n\r\n"
            f"--b\r\nContent-Type: text/rfc822-headers\r\n\r\nX-Mailflow-Send: {'t' * 40}\r\nTo: user{n}@example.org\r\n"
            "\r\n--b--\r\n").encode()


def run() -> list[dict]:
    if reason := unavailable():
        raise MissingTool(reason)
    with DovecotInstance() as server, tempfile.TemporaryDirectory() as tmp:
        log(f"imap_bench: delivering {MESSAGES} messages into the Maildir")
        for n in range(MESSAGES):
            server.deliver(bounce(n))
        tls = ssl.create_default_context(cafile=str(server.certificate))
        start = time.perf_counter()  # the baseline: the same messages read straight from the server's Maildir
        on_disk = sum(len(p.read_bytes()) for p in server.messages())
        disk_seconds = time.perf_counter() - start
        sizes: list[int] = []
        start = time.perf_counter()
        report = fetch_new(server.url, PASSWORD, Path(tmp) / "imap-state.json", lambda raw, _: sizes.append(len(raw)),
                           tls=tls)
        seconds = time.perf_counter() - start
    problem = None
    if report.fetched != MESSAGES or report.moved != MESSAGES:
        problem = f"imap_bench: fetched {report.fetched}, moved {report.moved} of {MESSAGES}"
    log(f"imap_bench: {MESSAGES} messages ({sum(sizes) / 2**20:.1f} MiB) fetched, committed and moved in {seconds:.1f} s")
    return [
        row("imap fetch+commit+move 10k (Dovecot, imaps)", seconds, "s", f"target {TARGET:.0f} s", seconds / TARGET,
            problem=problem or (f"imap_bench: {seconds:.1f} s over the {TARGET:.0f} s target" if seconds > TARGET else None)),
        row("imap fetch+commit+move 10k (Dovecot, imaps)", MESSAGES / seconds, "msg/s",
            f"read from its Maildir {MESSAGES / disk_seconds:.0f} msg/s", disk_seconds / seconds,
            note=f"{on_disk / 2**20:.1f} MiB on disk, {sum(sizes) / 2**20:.1f} MiB fetched"),
    ]


if __name__ == "__main__":
    for r in run():
        print(r)
