"""The demo's readers: a fixed sample of the delivered messages opened, clicked and unsubscribed from, over real HTTP."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

# Shares of the delivered messages, by a hash of the recipient's address: the same readers in every run.
OPEN_PERCENT = 40  # fetch the pixel
REOPEN_PERCENT = 10  # ... twice, so total opens exceed unique ones
CLICK_PERCENT = 15  # also follow the first tracked link
UNSUBSCRIBERS = 3  # opened without clicking, then RFC 8058 one-click unsubscribe
PROXY_PERCENT = 4  # the last few of the openers read through Gmail's image proxy: machine opens the report flags
READER_AGENT = "mailflow-demo-reader/1"
PROXY_AGENT = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
_TRACKED = re.compile(r"""https?://[^/\s"'<>]+(/(?:o|c)/[^\s"'<>]+)""")
_LIST_UNSUBSCRIBE = re.compile(r"<(https?://[^>]+)>")


@dataclass
class Engagement:
    """What the readers did and the service acknowledged, per variant (the message's Feedback-ID names it)."""

    opened: Counter = field(default_factory=Counter)  # recipients whose pixel was fetched
    opens: Counter = field(default_factory=Counter)  # pixel fetches
    clicked: Counter = field(default_factory=Counter)
    clicks: Counter = field(default_factory=Counter)
    unsubscribed: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(getattr(self, name)) for name in ("opened", "opens", "clicked", "clicks", "unsubscribed")}


def share(address: str) -> int:
    """0-99, fixed per address: which readers an address belongs to."""
    return int.from_bytes(hashlib.sha256(address.lower().encode()).digest()[:4], "big") % 100


def engage(maildir: Path, base_url: str) -> Engagement:
    """Read the sampled messages still unread in `maildir`'s new/, fetching their tracking URLs from the
    service at `base_url` (whatever base the message was sent with: only the path is used), then file them
    under cur/ as read, as a mail client does; a second run finds nothing left to read."""
    readers = []
    for path in sorted((maildir / "new").iterdir()):
        with path.open("rb") as fh:  # the headers only, and the compat32 parser: 15x faster than parsing all
            address = parseaddr(BytesHeaderParser().parse(fh)["To"])[1]
        if share(address) < OPEN_PERCENT:
            readers.append((share(address), address, path))
    unsubscribers = {a for _, a, _ in sorted(r for r in readers if r[0] >= CLICK_PERCENT)[:UNSUBSCRIBERS]}
    done = Engagement()
    with Client(base_url) as client:
        for number, address, path in readers:
            message = message_from_bytes(path.read_bytes())
            variant = message["Feedback-ID"].rsplit(":", 2)[0].split(":", 1)[1]  # campaign:variant:stream:sender
            pixel, *links = _tracked_paths(message)
            agent = PROXY_AGENT if number >= OPEN_PERCENT - PROXY_PERCENT else READER_AGENT
            for _ in range(2 if number < REOPEN_PERCENT else 1):
                client.expect("GET", pixel, 200, agent=agent)
                done.opens[variant] += 1
            done.opened[variant] += 1
            if number < CLICK_PERCENT and links:
                client.expect("GET", links[0], 302)
                done.clicks[variant] += 1
                done.clicked[variant] += 1
            if address in unsubscribers:
                url = _LIST_UNSUBSCRIBE.search(message["List-Unsubscribe"]).group(1)
                client.expect("POST", urlsplit(url).path, 200, body=b"List-Unsubscribe=One-Click")
                done.unsubscribed[variant] += 1
            os.rename(path, maildir / "cur" / f"{path.name}:2,S")  # seen
    return done


def _tracked_paths(message: Message) -> list[str]:
    """The pixel's path first, then each click link's, in the order the HTML has them."""
    part = next(p for p in message.walk() if p.get_content_type() == "text/html")
    html = part.get_payload(decode=True).decode(part.get_content_charset() or "utf-8")
    paths = list(dict.fromkeys(_TRACKED.findall(html)))
    return [p for p in paths if p.startswith("/o/")] + [p for p in paths if p.startswith("/c/")]


class Client:
    """One keep-alive connection to the service; every answer is checked, so each count is an acknowledged request."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.connection.close()

    def expect(self, method: str, path: str, status: int, body: bytes | None = None, agent: str = READER_AGENT) -> None:
        headers = {"User-Agent": agent}
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        self.connection.request(method, path, body=body, headers=headers)
        response = self.connection.getresponse()
        response.read()
        if response.status != status:
            raise RuntimeError(f"the tracking service answered {method} {path.split('/')[1]}/… with "
                               f"{response.status}, not {status}")
