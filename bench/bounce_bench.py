"""Bounce classification benchmark: messages/s of tasks/bounces/message.py over a Maildir of real-shaped bounces, one core.

The Maildir holds BENCH_BOUNCE_N messages (default 10,000): the crisp corpus bodies wrapped as the
prose bounces MTAs return, and RFC 3464 DSNs carrying the original's headers, in equal shares.
Reading the files is timed too, as `mailflow bounces classify DIR` would. `python -m bench.bounce_bench`.
"""

from __future__ import annotations

import os
import tempfile
import time
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import compat32
from pathlib import Path

from bench import label, row
from mailflow.tasks.bounces.message import classify_message

N = int(os.environ.get("BENCH_BOUNCE_N", "10000"))
CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "bounces-crisp"
TARGET = 2000.0  # issue #12: classify at least 2,000 messages/s on one core
DSN = ("From: MAILER-DAEMON@mx.example.net\nTo: bounce+{token}@bounces.example.com\nSubject: Delivery Status Notification\n"
       "MIME-Version: 1.0\nContent-Type: multipart/report; report-type=delivery-status; boundary=B\n\n--B\n"
       "Content-Type: text/plain\n\nDelivery to the following recipient failed permanently.\n\n--B\n"
       "Content-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example.net\n\nFinal-Recipient: rfc822; u{i}@example.org\n"
       "Action: failed\nStatus: 5.1.1\nDiagnostic-Code: smtp; 550 5.1.1 <u{i}@example.org>: Recipient address rejected: "
       "User unknown\n\n--B\nContent-Type: text/rfc822-headers\n\nFrom: news@shop.example\nTo: u{i}@example.org\n"
       "Message-ID: <{i}@shop.example>\nX-Mailflow-Send: {token}\nSubject: Spring sale\n\n--B--\n")


def samples() -> list[bytes]:
    out = []
    for path in sorted(CORPUS.glob("*.txt")):
        msg = EmailMessage()
        msg["From"] = "Mail Delivery System <MAILER-DAEMON@mx.example.net>"
        msg["To"] = "bounce+" + "a" * 40 + "@bounces.example.com"
        msg["Subject"] = "Undelivered Mail Returned to Sender"
        msg.set_content(path.read_text(encoding="utf-8", errors="replace"))
        out.append(msg.as_bytes())
    return out


def run() -> list[dict]:
    prose = samples()
    with tempfile.TemporaryDirectory() as tmp:
        new = Path(tmp) / "new"
        new.mkdir()
        for i in range(N):
            raw = prose[i // 2 % len(prose)] if i % 2 else DSN.format(i=i, token="b" * 40).encode()
            (new / f"{i}.bench:2,").write_bytes(raw)
        files = sorted(new.iterdir())
        start = time.process_time()  # the baseline: reading and parsing the same files with the standard library alone
        parsed = sum(1 for f in files if message_from_bytes(f.read_bytes(), policy=compat32) is not None)
        parse_seconds = time.process_time() - start
        start = time.process_time()  # CPU time of this one process: the one-core figure
        results = sum(len(classify_message(f.read_bytes(), str(f))) for f in files)
        seconds = time.process_time() - start
    rate = N / seconds
    problem = None if results >= N else f"bounce bench: only {results} results for {N} messages"
    note = None if rate >= TARGET else f"below the {TARGET:.0f}/s target of issue #12"
    parse_rate = parsed / parse_seconds
    return [row(f"classify {label(N)} bounces (Maildir)", rate, "messages/s", f"target {TARGET:.0f}", rate / TARGET,
                problem=problem, note=note),
            row(f"classify {label(N)} bounces (Maildir)", rate, "messages/s", f"stdlib parse only {parse_rate:.0f}/s",
                rate / parse_rate)]


if __name__ == "__main__":
    for r in run():
        print(r)
