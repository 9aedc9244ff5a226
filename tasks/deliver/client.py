"""The SMTP client: the wire format (replies, DATA bytes) and a persistent connection that pipelines (RFC 2920)."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl

from mailflow.settings import Relay
from mailflow.tasks.compose.message import Envelope
from mailflow.tasks.deliver.smtp import Outcome, outcome_of_error, outcome_of_mail_refusal, outcome_of_reply, outcome_of_session_refusal
from mailflow.tasks.deliver.wire import (
    MAX_REPLY_LINES,
    NO_SMTPUTF8,
    UNSAFE_ADDRESS,
    ProtocolError,
    Reply,
    SessionRefused,
    unsafe_address,
    wire_data,
)


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# The connection

class PipeliningConnection:
    """One persistent connection to a relay, opened on first use and reopened after trouble.

    A Transport (mailflow.tasks.deliver.smtp). `tls_context` replaces the default, verifying,
    context (tests pass one that trusts their own certificate authority).
    """

    def __init__(self, relay: Relay, helo: str, timeout: float, max_messages: int = 1000, *,
                 tls_context: ssl.SSLContext | None = None):
        if not helo or UNSAFE_ADDRESS.search(helo) or " " in helo:
            raise ValueError(f"not a usable EHLO name: {helo!r}")
        self.relay, self.helo, self.timeout, self.max_messages = relay, helo, timeout, max_messages
        self._tls_context = tls_context
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._extensions: dict[str, str] = {}
        self._messages = 0
        self._plain_only = False  # opportunistic TLS failed with this server: go on in the clear
        self._began = False  # this send has written MAIL
        self._stage = ""  # the command whose reply failed the transaction: MAIL, RCPT or DATA
        self._closing: set[asyncio.Task] = set()

    async def send(self, envelope: Envelope) -> Outcome:
        refused = unsafe_address(envelope)
        if refused is not None:
            return refused
        relay = self.relay
        if relay.username and relay.tls in ("none", "opportunistic") and not is_loopback(relay.host):
            return Outcome("failed", None, None, "refusing to send the relay password without TLS")
        self._began = False  # set once MAIL is written: from then on the message may be under way
        try:
            if self._writer is not None and not self._reusable():
                self._abort()
            if self._writer is not None and self._messages >= self.max_messages:
                await self.close()  # recycle: long sessions meet per-connection limits on relays
            if self._writer is None:
                await self._open()
            if envelope.smtputf8 and "SMTPUTF8" not in self._extensions:
                return NO_SMTPUTF8  # that recipient alone: the session stays for the next
            self._messages += 1
            reply = await self._transaction(envelope)
        except SessionRefused as exc:
            await self.close()
            return outcome_of_session_refusal(exc.reply.code, exc.reply.text)
        except asyncio.CancelledError:
            self._abort()  # the conversation stopped at an unknown point
            raise
        except Exception as exc:  # noqa: BLE001 - any other failure must still give this recipient an outcome
            self._abort()
            return outcome_of_error(exc, unsent=not self._began)
        if self._stage == "MAIL":
            return outcome_of_mail_refusal(reply.code, reply.text)
        return outcome_of_reply(reply.code, reply.text)

    async def close(self) -> None:
        if self._writer is not None:
            try:
                self._write(b"QUIT\r\n")
                await self._reply()
            except Exception:  # noqa: BLE001 - the connection is going anyway
                pass
            finally:
                self._abort()
        if self._closing:  # a TLS close takes a few exchanges; let them finish while the loop runs
            await asyncio.wait(self._closing, timeout=self.timeout)

    def _abort(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        self._extensions = {}
        if writer is not None:
            writer.close()
            task = asyncio.ensure_future(writer.wait_closed())
            task.add_done_callback(self._closing.discard)
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # already reported as the outcome
            self._closing.add(task)

    def _reusable(self) -> bool:
        # A server that timed an idle connection out has closed it, often after a 421 line.
        # Streams offer no public peek, so look at the buffer: those bytes are no reply of ours.
        reader = self._reader
        return (reader is not None and not reader.at_eof() and not getattr(reader, "_buffer", b"")
                and not self._writer.is_closing())

    def _write(self, data: bytes) -> None:
        assert self._writer is not None
        self._writer.write(data)

    async def _within(self, awaitable, what: str):
        try:
            async with asyncio.timeout(self.timeout):
                return await awaitable
        except TimeoutError:
            raise TimeoutError(f"{what}: nothing within {self.timeout:g} s") from None

    async def _reply(self) -> Reply:
        # Pipelined replies mostly arrive together: one already buffered whole needs no deadline
        # (a timer set and cancelled costs a few µs, four times a message)
        buffered = getattr(self._reader, "_buffer", b"")
        if buffered[3:4] == b" " and b"\n" in buffered:
            return await self._read_reply()
        # One deadline for the whole reply: a server trickling lines cannot hold us past it.
        return await self._within(self._read_reply(), "waiting for a reply")

    async def _read_reply(self) -> Reply:
        """One reply, multi-line (`250-...` up to `250 ...`) as RFC 5321 4.2.1 has it."""
        assert self._reader is not None
        lines: list[str] = []
        while True:
            line = await self._reader.readline()
            if not line.endswith(b"\n"):
                raise ConnectionError("the server closed the connection")
            code, separator = line[:3], line[3:4]
            if not code.isdigit() or separator not in (b" ", b"-", b"\r", b"\n") or len(lines) >= MAX_REPLY_LINES:
                raise ProtocolError(f"not an SMTP reply: {line[:80]!r}")
            lines.append(line[4:].strip().decode("utf-8", "replace"))
            if separator != b"-":
                return Reply(int(code), tuple(lines))

    async def _command(self, line: str, ok: int = 2) -> Reply:
        self._write(line.encode("ascii") + b"\r\n")
        reply = await self._reply()
        if reply.code // 100 != ok:
            raise SessionRefused(reply)
        return reply

    async def _open(self) -> None:
        relay = self.relay
        context = self._context() if relay.tls != "none" else None
        local = (relay.source, 0) if relay.source else None  # a chosen sending IP of this host
        self._reader, self._writer = await self._within(asyncio.open_connection(
            relay.host, relay.port, ssl=context if relay.tls == "implicit" else None, local_addr=local), "connecting")
        self._messages = 0
        greeting = await self._reply()
        if greeting.code // 100 != 2:
            raise SessionRefused(greeting)
        await self._hello()
        offered = "STARTTLS" in self._extensions
        if relay.tls == "starttls" and not offered:
            raise ProtocolError("the relay does not offer STARTTLS")
        if relay.tls == "starttls" or (relay.tls == "opportunistic" and offered and not self._plain_only):
            await self._command("STARTTLS")
            if getattr(self._reader, "_buffer", b""):  # RFC 3207 5: plaintext after 220 would pass as encrypted
                raise ProtocolError("the relay sent data after its STARTTLS reply")
            try:
                await self._within(self._writer.start_tls(context, server_hostname=relay.host), "TLS handshake")
            except (ssl.SSLError, OSError, TimeoutError):
                if relay.tls != "opportunistic":
                    raise
                # Opportunistic TLS (RFC 7435) that fails goes on in the clear, as MTAs do: a new session.
                self._abort()
                self._plain_only = True
                return await self._open()
            await self._hello()  # RFC 3207 4.2: what was said before TLS is forgotten
        if relay.username:
            await self._authenticate()

    def _context(self) -> ssl.SSLContext:
        if self._tls_context is None and self.relay.tls == "opportunistic":
            # Direct to MX: encrypt whenever offered, without insisting on a certificate (RFC 7435);
            # most exchangers' names do not match their MX names, and the alternative is plaintext.
            self._tls_context = ssl.create_default_context()
            self._tls_context.check_hostname = False
            self._tls_context.verify_mode = ssl.CERT_NONE
        elif self._tls_context is None:
            self._tls_context = ssl.create_default_context()  # verifies the relay's certificate and name
        return self._tls_context

    async def _hello(self) -> None:
        self._write(f"EHLO {self.helo}\r\n".encode("ascii"))
        reply = await self._reply()
        if reply.code // 100 == 5:  # no ESMTP: plain HELO, no extensions, no pipelining
            await self._command(f"HELO {self.helo}")
            self._extensions = {}
            return
        if reply.code // 100 != 2:
            raise SessionRefused(reply)
        self._extensions = {}
        for line in reply.lines[1:]:
            if line[:5].upper() == "AUTH=":  # the pre-RFC 4954 spelling some servers still add
                line = "AUTH " + line[5:]
            keyword, _, params = line.partition(" ")
            self._extensions[keyword.upper()] = params

    async def _authenticate(self) -> None:
        if "AUTH" not in self._extensions:
            raise ProtocolError("the relay offers no AUTH")
        mechanisms = self._extensions["AUTH"].upper().split()
        user, password = self.relay.username.encode("utf-8"), self.relay.password.reveal().encode("utf-8")
        if "PLAIN" in mechanisms:
            token = base64.b64encode(b"\0" + user + b"\0" + password).decode("ascii")
            try:
                await self._command(f"AUTH PLAIN {token}")
                return
            except SessionRefused as exc:
                # Some servers list PLAIN and then refuse it; wrong credentials stay wrong.
                if exc.reply.code == 535 or "LOGIN" not in mechanisms:
                    raise
        if "LOGIN" not in mechanisms:
            raise ProtocolError("the relay offers neither AUTH PLAIN nor AUTH LOGIN")
        await self._command("AUTH LOGIN", ok=3)
        await self._command(base64.b64encode(user).decode("ascii"), ok=3)
        await self._command(base64.b64encode(password).decode("ascii"))

    def _mail_from(self, envelope: Envelope, size: int) -> bytes:
        params = ""
        if "SIZE" in self._extensions:
            params += f" SIZE={size}"
        if "8BITMIME" in self._extensions and not envelope.data.isascii():
            params += " BODY=8BITMIME"
        if envelope.smtputf8:  # offered, or send() would not have got here
            params += " SMTPUTF8"
        return f"MAIL FROM:<{envelope.sender}>{params}\r\n".encode("ascii")

    async def _transaction(self, envelope: Envelope) -> Reply:
        """MAIL, RCPT, DATA and the message; the first failing reply, or the final one."""
        size, data = wire_data(envelope.data)
        # UTF-8 only in a SMTPUTF8 transaction: unsafe_address() refused non-ASCII in any other
        rcpt = f"RCPT TO:<{envelope.recipient}>\r\n".encode("utf-8" if envelope.smtputf8 else "ascii")
        commands = (self._mail_from(envelope, size), rcpt, b"DATA\r\n")
        pipelining = "PIPELINING" in self._extensions
        self._began, self._stage = True, ""
        if pipelining:  # one write, then the three replies in order (RFC 2920 3.1)
            self._write(b"".join(commands))
        failure: Reply | None = None
        try:
            for command, wanted, stage in zip(commands, (2, 2, 3), ("MAIL", "RCPT", "DATA")):
                if not pipelining:
                    if failure is not None:
                        break
                    self._write(command)
                reply = await self._reply()
                if reply.code // 100 != wanted and failure is None:
                    failure, self._stage = reply, stage
                if reply.code == 421:  # the server is going away: no more replies will come
                    self._abort()
                    return failure
            if reply.code == 354:
                # After a refused MAIL or RCPT only a broken server says 354: end it with no content.
                self._write(data if failure is None else b".\r\n")
                if self._writer.transport.get_write_buffer_size():  # else the socket took it all
                    await self._within(self._writer.drain(), "sending the message")
                final = await self._reply()
                if failure is None and final.code // 100 == 2:
                    return final
                failure = failure or final
                if final.code == 421:
                    self._abort()
                    return failure
            await self._command("RSET")  # the next transaction starts clean
        except Exception:
            if failure is None:
                raise
            self._abort()  # the reply that counts is in; the connection is not worth saving
        return failure
