"""A real SMTP receiver on loopback (aiosmtpd) for the demo and the tests: stores, records or misbehaves."""

from __future__ import annotations

import asyncio
import mailbox
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import MISSING, AuthResult

USER_UNKNOWN = "550 5.1.1 Recipient address rejected: User unknown in virtual mailbox table"
# Long enough that the client under test times out first; stopping the receiver cancels it.
STALL_SECONDS = 120.0


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    mail_options: list[str] = field(default_factory=list)  # e.g. SIZE=123, BODY=8BITMIME
    peer: tuple | None = None  # the client's (host, port): one value per connection
    tls: bool = False
    pipelined: bool = False  # RCPT and DATA had already arrived when MAIL was handled (RFC 2920)


@dataclass(frozen=True)
class Hold:
    """A DATA reply held until the test says: `arrived` is set once the message is in, and the
    reply (the normal one) goes when `released` is set. A test orders events without timing."""

    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Fault:
    """What the receiver does instead of its normal reply at one stage of a transaction.

    MAIL faults are looked up by sender, RCPT and DATA faults by recipient (address, then
    domain). DATA faults act after the whole message has arrived, before the final reply.
    """

    stage: str  # MAIL | RCPT | DATA
    reply: str = ""  # e.g. "554 5.7.1 Rejected"; a 421 reply is followed by closing the connection
    drop: bool = False  # close the connection instead of replying
    stall: bool = False  # never reply
    keep: bool = False  # RCPT: accept the recipient anyway, as a broken server might, so DATA gets 354
    hold: Hold | None = None  # DATA: reply normally, but only once the hold is released


@dataclass
class _Handler:
    maildir: mailbox.Maildir | None
    replies: dict[str, str]  # address or domain -> the RCPT reply that refuses it
    record: bool
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    faults: dict[str, Fault] = field(default_factory=dict)
    pipelining: bool = False
    ehlo: bool = True
    delay: float = 0.0  # seconds before the reply to each message's DATA: a slow server
    quits: int = 0
    # domain -> answer(return_path, recipient, message) -> bytes: mail sent back after accepting, into `answer_box`
    answers: dict[str, Callable[[str, str, bytes], bytes]] = field(default_factory=dict)
    answer_box: mailbox.Maildir | None = None

    def _fault(self, stage: str, *addresses: str) -> Fault | None:
        for address in addresses:
            for key in (address.lower(), address.rpartition("@")[2].lower()):
                fault = self.faults.get(key)
                if fault is not None and fault.stage == stage:
                    return fault
        return None

    async def _misbehave(self, server, fault: Fault) -> str:
        if fault.drop:
            server.transport.close()
        if fault.drop or fault.stall:
            await asyncio.sleep(STALL_SECONDS)  # cancelled when the connection goes
        if fault.reply.startswith("421"):  # RFC 5321 3.8: the server closes after saying so
            asyncio.get_running_loop().call_soon(server.transport.close)
        return fault.reply

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if not self.ehlo:  # an old server: the client must fall back to HELO
            return ["502 5.5.2 Error: command not recognized"]
        session.host_name = hostname
        if self.pipelining:  # aiosmtpd handles pipelined commands but does not advertise it
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        fault = self._fault("MAIL", address)
        if fault is not None:
            return await self._misbehave(server, fault)
        envelope.pipelined = b"DATA" in bytes(getattr(server._reader, "_buffer", b""))
        return MISSING  # aiosmtpd's own handling

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        fault = self._fault("RCPT", address)
        if fault is not None:
            if fault.keep:
                envelope.rcpt_tos.append(address)
            return await self._misbehave(server, fault)
        reply = self.replies.get(address.lower()) or self.replies.get(address.rpartition("@")[2].lower())
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server, session, envelope):
        fault = self._fault("DATA", *envelope.rcpt_tos)
        if fault is not None and fault.hold is not None:
            fault.hold.arrived.set()
            await asyncio.get_running_loop().run_in_executor(None, fault.hold.released.wait, STALL_SECONDS)
        elif fault is not None:
            return await self._misbehave(server, fault)
        if self.delay:
            await asyncio.sleep(self.delay)
        data = envelope.original_content or envelope.content
        with self.lock:
            if self.maildir is not None:
                self.maildir.add(data)
            for rcpt in envelope.rcpt_tos:  # as a gateway that learns only later that the mailbox is gone
                answer = self.answers.get(rcpt.rpartition("@")[2].lower())
                if answer is not None and self.answer_box is not None and envelope.mail_from:
                    self.answer_box.add(answer(envelope.mail_from, rcpt, data))
            if self.record:
                self.received.append(Received(
                    envelope.mail_from, list(envelope.rcpt_tos), data, list(envelope.mail_options),
                    tuple(session.peer) if session.peer else None,
                    server.transport.get_extra_info("ssl_object") is not None,
                    getattr(envelope, "pipelined", False),
                ))
        return "250 2.0.0 Ok: queued"

    async def handle_QUIT(self, server, session, envelope):
        with self.lock:
            self.quits += 1
        return MISSING


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Receiver:
    """`with Receiver(maildir=..., replies={"gone.example": USER_UNKNOWN}) as rx: rx.port`

    For tests of clients, the keyword arguments make it misbehave: `faults` per address,
    `pipelining` advertised, `ehlo=False` (HELO only), `auth={"user": "password"}` required,
    `tls_context` for STARTTLS (or for the whole connection with `implicit_tls`),
    `server_options` passed to aiosmtpd's SMTP (e.g. data_size_limit, timeout; SMTPUTF8 is offered
    unless enable_SMTPUTF8=False), `delay` (seconds before answering each message, a slow server)
    `port` (default: a free one), and `answers` per recipient domain (a DSN or an auto-reply made by the
    function, written into the Maildir `answers_to`, as the bounce domain's MTA would deliver it).
    """

    def __init__(self, maildir: Path | None = None, replies: dict[str, str] | None = None,
                 record: bool = False, host: str = "127.0.0.1", *,
                 faults: dict[str, Fault] | None = None, pipelining: bool = False, ehlo: bool = True,
                 auth: dict[str, str] | None = None, tls_context: ssl.SSLContext | None = None,
                 implicit_tls: bool = False, server_options: dict | None = None, port: int = 0,
                 delay: float = 0.0, answers: dict[str, Callable[[str, str, bytes], bytes]] | None = None,
                 answers_to: Path | None = None):
        box = _maildir(maildir) if maildir else None
        self.handler = _Handler(box, {k.lower(): v for k, v in (replies or {}).items()}, record,
                                faults={k.lower(): v for k, v in (faults or {}).items()},
                                pipelining=pipelining, ehlo=ehlo, delay=delay, answers=dict(answers or {}),
                                answer_box=_maildir(answers_to) if answers_to else None)
        self.host = host
        self._fixed_port = port  # two receivers on different loopback addresses can share a port, as MXes do
        self.port = 0
        self._options = dict(server_options or {})
        if auth is not None:
            # Over implicit TLS aiosmtpd does not know the session is encrypted, so it must not insist.
            self._options.update(authenticator=_authenticator(auth), auth_required=True,
                                 auth_require_tls=tls_context is not None and not implicit_tls)
        if tls_context is not None and not implicit_tls:
            self._options["tls_context"] = tls_context
        self._ssl_context = tls_context if implicit_tls else None
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    @property
    def quits(self) -> int:
        return self.handler.quits

    def start(self) -> Receiver:
        self.port = self._fixed_port or free_port(self.host)
        self._controller = Controller(self.handler, hostname=self.host, port=self.port, ready_timeout=10,
                                      ssl_context=self._ssl_context, **self._options)
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


def _maildir(path: Path) -> mailbox.Maildir:
    path.parent.mkdir(parents=True, exist_ok=True)
    return mailbox.Maildir(str(path), create=True)


def _authenticator(users: dict[str, str]):
    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        login = auth_data.login.decode("utf-8", "replace")
        ok = users.get(login) == auth_data.password.decode("utf-8", "replace")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd sends the 535
    return authenticate
