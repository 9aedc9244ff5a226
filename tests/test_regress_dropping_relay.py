"""Regression (review of the sending engine): A relay that accepts TCP and then closes (or never greets) is failed over and leaves the rotation."""
import asyncio, socket, threading
import pytest
from mailflow.tasks.demo.receiver import Receiver
from mailflow.tasks.send.chunk import send_chunk
from tests.test_dispatch import settings_for
from tests.test_send import SPEC, write_chunk


class Bad:
    def __init__(self, stall=False):
        self.sock = socket.socket(); self.sock.bind(("127.0.0.1", 0)); self.sock.listen(64)
        self.port, self.stall, self.held, self.accepted = self.sock.getsockname()[1], stall, [], 0
        threading.Thread(target=self.loop, daemon=True).start()

    def loop(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            if self.stall: self.held.append(c)
            else: c.close()


@pytest.mark.parametrize("stall", [False, True])
def test_bad_relay(tmp_path, stall):
    bad = Bad(stall)
    with Receiver(record=True) as good:
        settings = settings_for(tmp_path / "h", f"127.0.0.1:{bad.port}", f"127.0.0.1:{good.port}", timeout=1.0)
        chunk = write_chunk(tmp_path / "c.parquet", [f"u{i}@example.com" for i in range(30)])
        counts = asyncio.run(send_chunk(settings, SPEC, chunk))
    assert counts.get("delivered") == 30, "a relay that never held a session should be failed over and leave rotation"
