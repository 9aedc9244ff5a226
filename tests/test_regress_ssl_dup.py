"""Regression (review of the sending engine): A TLS error after the message was accepted is final: no fail-over, so never two copies."""
import asyncio, os, socket, threading
from mailflow.settings import Relay
from mailflow.tasks.deliver.client import PipeliningConnection
from mailflow.tasks.deliver.dispatch import Connections, Dispatcher
from mailflow.tasks.deliver.shaping import GlobalGate
from mailflow.tasks.demo.receiver import Receiver
from tests.test_smtpclient import certificate, server_tls, good, HELO  # noqa: F401 - fixtures


class CorruptingMx:
    def __init__(self, ctx):
        self.ctx, self.accepted = ctx, 0
        self.sock = socket.socket(); self.sock.bind(("127.0.0.1", 0)); self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            c, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        f = c.makefile("rb")
        c.sendall(b"220 mx ESMTP\r\n"); f.readline()
        c.sendall(b"250-mx\r\n250 STARTTLS\r\n"); f.readline()
        c.sendall(b"220 go ahead\r\n")
        s = self.ctx.wrap_socket(c, server_side=True); f = s.makefile("rb")
        f.readline(); s.sendall(b"250 mx\r\n")  # EHLO
        for _ in range(2):
            f.readline(); s.sendall(b"250 ok\r\n")  # MAIL, RCPT
        f.readline(); s.sendall(b"354 go\r\n")
        while f.readline() != b".\r\n":
            pass
        self.accepted += 1  # the message is taken; now the TLS stream breaks before the 250
        raw = socket.socket(fileno=os.dup(s.fileno()))
        raw.sendall(b"\x17\x03\x03\x00\x20" + b"\x00" * 32)
        raw.close()


class Fixed:
    def __init__(self, relays): self.relays = relays
    async def candidates(self, domain): return self.relays
    def failed(self, relay): pass
    def worked(self, relay): pass


def test_ssl_error_after_data_fails_over(server_tls):
    bad = CorruptingMx(server_tls)
    with Receiver(record=True) as good_rx:
        relays = [Relay("127.0.0.1", bad.port, tls="opportunistic"), Relay("127.0.0.1", good_rx.port, tls="opportunistic")]
        from mailflow.settings import load_settings
        limits = load_settings(environ={}).shaping
        d = Dispatcher(Fixed(relays), Connections(lambda r, m: PipeliningConnection(r, HELO, 3, m), 2), limits,
                       GlobalGate(None, 1), lane_per_domain=True)

        async def run():
            return [r async for r in d.run([{"email": "reader0@example.com", "subscriber_id": 1}], lambda row: good(0),
                                           lambda row: None, lambda row: None)]
        asyncio.run(run())
        assert bad.accepted + len(good_rx.received) == 1, "delivered twice"
