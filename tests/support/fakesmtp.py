"""One recording SMTP server for the misbehaviours aiosmtpd cannot show, each with a name."""

from __future__ import annotations

import asyncio
import ssl
import threading
from enum import Enum


class Misbehaviour(Enum):
    CLOSE_ON_CONNECT = "accepts the connection and closes it without a word"
    SILENT = "accepts the connection and never greets"
    DROP_AFTER_GREETING = "greets, then closes the connection"
    GREETING_421 = "greets with 421 (too many connections), then closes"
    TLS_THEN_DROP = "takes a whole message over STARTTLS, then breaks the TLS stream before the final reply"


GREETING = b"220 fake.example ESMTP\r\n"
THROTTLE = b"421 4.7.0 Too many connections from your IP, try later\r\n"
# A TLS application-data record no key decrypts: the client's TLS layer fails on it (bad record MAC).
CORRUPT_RECORD = b"\x17\x03\x03\x00\x20" + b"\x00" * 32


class FakeSmtp:
    """`with FakeSmtp(Misbehaviour.SILENT) as server: server.port`

    `mailflow.tasks.demo.receiver.Receiver` (aiosmtpd) covers replies and faults inside a transaction; this
    server covers what happens around one: a peer that hangs up before or after its greeting,
    greets with 421, never speaks, or breaks its TLS stream once it has taken a message.
    conftest.py gives each behaviour a fixture. `sessions` counts the connections accepted,
    `commands` holds each command line received and `messages` the content of each message
    taken (before the final reply, if any).
    """

    def __init__(self, behaviour: Misbehaviour, host: str = "127.0.0.1", port: int = 0,
                 tls_context: ssl.SSLContext | None = None):
        if behaviour is Misbehaviour.TLS_THEN_DROP and tls_context is None:
            raise ValueError("TLS_THEN_DROP needs a server TLS context")
        self.behaviour, self.host, self.port, self.tls_context = behaviour, host, port, tls_context
        self.sessions = 0
        self.commands: list[str] = []
        self.messages: list[bytes] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fakesmtp", daemon=True)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()

    def __enter__(self) -> FakeSmtp:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._serve, self.host, self.port, limit=1 << 20))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc) -> None:
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(10)

    async def _shutdown(self) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()  # a silent session waits for this
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        self.sessions += 1
        plain = writer.transport  # under TLS too: closing it sends what is written, then FIN
        try:
            await self._misbehave(reader, writer, plain)
        except asyncio.CancelledError:
            pass  # the server is stopping; ending quietly keeps asyncio from logging the cancelled session
        finally:
            plain.close()
            self._tasks.discard(task)

    async def _misbehave(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                         plain: asyncio.Transport) -> None:
        if self.behaviour is Misbehaviour.CLOSE_ON_CONNECT:
            return
        if self.behaviour is Misbehaviour.SILENT:
            await asyncio.Event().wait()  # until the server stops
        if self.behaviour is Misbehaviour.GREETING_421:
            await self._say(writer, THROTTLE)
            return
        await self._say(writer, GREETING)
        if self.behaviour is Misbehaviour.DROP_AFTER_GREETING:
            return
        await self._converse(reader, writer, plain)

    async def _converse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                        plain: asyncio.Transport) -> None:
        """A minimal ESMTP server that offers STARTTLS, accepts every command, then breaks TLS after DATA."""
        while line := await reader.readline():
            self.commands.append(line.decode("utf-8", "replace").rstrip("\r\n"))
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                offer = writer.transport is plain
                await self._say(writer, b"250-fake.example\r\n250 STARTTLS\r\n" if offer else b"250 fake.example\r\n")
            elif verb == b"STAR":
                await self._say(writer, b"220 2.0.0 Ready to start TLS\r\n")
                await writer.start_tls(self.tls_context)
            elif verb == b"DATA":
                await self._say(writer, b"354 End data with <CR><LF>.<CR><LF>\r\n")
                self.messages.append(await reader.readuntil(b"\r\n.\r\n"))
                plain.write(CORRUPT_RECORD)  # the message is taken; now the TLS stream breaks before the 250
                return
            elif verb == b"QUIT":
                await self._say(writer, b"221 2.0.0 Bye\r\n")
                return
            else:
                await self._say(writer, b"250 2.0.0 Ok\r\n")

    @staticmethod
    async def _say(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        await writer.drain()
