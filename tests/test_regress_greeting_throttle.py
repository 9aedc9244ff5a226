"""Regression (review of the sending engine): Direct to MX, a provider that throttles at connect time (421 4.7.0 greeting) suspends its lane."""
import asyncio, socket, threading
from dataclasses import replace
from mailflow.settings import load_settings
from mailflow.tasks.demo.receiver import free_port
from mailflow.tasks.send.chunk import send_chunk
from tests.dnsstub import DnsStub
from tests.test_dispatch import final_records
from tests.test_send import SPEC, write_chunk


def test_greeting_throttle_suspends(tmp_path):
    port = free_port("127.0.0.5")
    srv = socket.socket(); srv.bind(("127.0.0.5", port)); srv.listen(64)
    accepted = []
    def loop():
        while True:
            c, _ = srv.accept(); accepted.append(1)
            c.sendall(b"421 4.7.0 Too many connections from your IP, try later\r\n"); c.close()
    threading.Thread(target=loop, daemon=True).start()
    zone = {"gmail.com": {"MX": ["5 mx.gmail.com."]}, "mx.gmail.com": {"A": ["127.0.0.5"]}}
    with DnsStub(zone) as dns:
        settings = load_settings(overrides={
            "home": str(tmp_path / "h"), "smtp": {"mx_port": port, "allow_private_mx": True},
            "dns": {"nameservers": ["127.0.0.1"], "port": dns.port}, "shaping": {"gmail": {"connections": 1}},
            "tracking": {"base_url": "https://t.example"}}, environ={"MAILFLOW_TRACKING__SECRET": "test-secret"})
        chunk = write_chunk(tmp_path / "c.parquet", [f"g{i}@gmail.com" for i in range(10)])
        lanes = {}
        asyncio.run(send_chunk(settings, replace(SPEC, transport="mx"), chunk, lanes=lanes))
    assert lanes["gmail"].suspended()
    assert {r["reason"] for r in final_records(settings).values()} == {"rate_limited"}
