"""A real SMTP receiver on loopback (aiosmtpd) for the demo and the tests: stores or records mail."""

from __future__ import annotations

import mailbox
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller

USER_UNKNOWN = "550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table"


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class _Handler:
    maildir: mailbox.Maildir | None
    replies: dict[str, str]  # address or domain -> the RCPT reply that refuses it
    record: bool
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.replies.get(address.lower()) or self.replies.get(address.rpartition("@")[2].lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        data = envelope.original_content or envelope.content
        with self.lock:
            if self.maildir is not None:
                self.maildir.add(data)
            if self.record:
                self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), data))
        return "250 2.0.0 Ok: queued"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Receiver:
    """`with Receiver(maildir=..., replies={"gone.example": USER_UNKNOWN}) as rx: rx.port`"""

    def __init__(self, maildir: Path | None = None, replies: dict[str, str] | None = None,
                 record: bool = False, host: str = "127.0.0.1"):
        if maildir:
            maildir.parent.mkdir(parents=True, exist_ok=True)
        box = mailbox.Maildir(str(maildir), create=True) if maildir else None
        self.handler = _Handler(box, {k.lower(): v for k, v in (replies or {}).items()}, record)
        self.host = host
        self.port = 0
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def start(self) -> Receiver:
        self.port = free_port(self.host)
        self._controller = Controller(self.handler, hostname=self.host, port=self.port, ready_timeout=10)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
