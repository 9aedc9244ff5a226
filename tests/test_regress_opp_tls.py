"""Regression (review of the sending engine): Direct to MX, an exchanger that offers STARTTLS but fails the handshake gets the message in the clear, in the same send."""
import asyncio, ssl
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from mailflow.settings import load_settings
from mailflow.tasks.demo.receiver import Receiver, free_port
from mailflow.tasks.send.chunk import send_chunk
from tests.dnsstub import DnsStub

from tests.test_send import SPEC, write_chunk


def test_lone_recipient_never_delivered(tmp_path):
    port = free_port("127.0.0.2")
    zone = {"one.example": {"MX": ["10 mx.one.example."]}, "mx.one.example": {"A": ["127.0.0.2"]}}
    broken = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)  # offers STARTTLS, no certificate
    spec = replace(SPEC, transport="mx")
    with DnsStub(zone) as dns, Receiver(record=True, host="127.0.0.2", port=port, tls_context=broken) as rx:
        settings = load_settings(overrides={
            "home": str(tmp_path / "h"), "smtp": {"mx_port": port, "allow_private_mx": True},
            "dns": {"nameservers": ["127.0.0.1"], "port": dns.port},
            "tracking": {"base_url": "https://t.example"}}, environ={"MAILFLOW_TRACKING__SECRET": "test-secret"})
        chunk = write_chunk(tmp_path / "c.parquet", ["a@one.example"])
        runs = [asyncio.run(send_chunk(settings, spec, chunk, lanes={}))]
        for hours in (1, 3, 7, 15):
            runs.append(asyncio.run(send_chunk(settings, spec, chunk, retry=True, lanes={},
                                               now=datetime.now(timezone.utc) + timedelta(hours=hours))))
        assert rx.received, "never delivered although the exchanger accepts plain SMTP"
